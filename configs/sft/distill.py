r"""Distillation SFT on a teacher's long chain-of-thought traces (o1 recipe).

"O1 replication journey part 2" and s1 / LIMO / Light-R1 fine-tune a model
on a reasoning model's traces: plain SFT whose completions are the long
<think>...</think> traces. The traces come from a JSONL file (one
`prompt_key` / `completion_key` pair per line, plus 'answer' for the
held-out accuracy check):

  python experiments/sft.py --config=configs/sft/distill.py \
      --workdir=runs/distill --config.data.path=teacher_traces.jsonl \
      --config.data.completion_key=response

Without a file, `data.generate.num` > 0 writes that many synthetic teacher
traces (worked steps, one caught slip, then the solution; see
`sources.teacher_trace`) into workdir/synthetic_traces.jsonl and trains on
them; ':debug' does so with a few dozen:

  python experiments/sft.py --config=configs/sft/distill.py:debug \
      --workdir=/tmp/distill_debug

The first `data.num_eval` lines are held out (greedy accuracy of the last
\boxed{} after training). Variants: '' (default), 'debug' (seconds).
"""

import ml_collections


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.mesh = (('data', 1), ('fsdp', -1), ('tensor', 1))
  c.sharding_rules = ()

  c.tokenizer = dict(kind='char')
  c.data = dict(
      source='jsonl', path='', prompt_key='prompt',
      completion_key='completion', num_eval=256,
      # Synthetic teacher traces when `path` is empty (num=0: off).
      generate=dict(num=0, seed=0, reflect_prob=0.5,
                    task=dict(num_steps=4, min_operand=1, max_operand=9,
                              modulus=10, ops=('+', '-', '*'),
                              word_problem=False)))

  c.model = dict(vocab_size=0, num_layers=3, embed_dim=96, mlp_dim=256,
                 num_heads=4, num_kv_heads=2, qkv_bias=True,
                 tie_embeddings=True, rope_theta=10000.0,
                 max_position_embeddings=1024)
  c.seq_len = 512  # Traces are long: ~300 characters for 4 steps.
  c.batch_size = 32
  c.pack = True
  c.grad_accum_steps = 1

  c.total_steps = ml_collections.FieldReference(1500)
  c.optim = dict(name='adamw', lr=2e-3, schedule='warmup_cosine',
                 warmup_steps=100, end_lr_ratio=0.05, b1=0.9, b2=0.98,
                 weight_decay=0.01, clip_norm=1.0)
  c.optim.total_steps = c.get_ref('total_steps')
  c.checkpoint_every = 250
  c.log_every = 50
  c.eval_max_new_tokens = 320
  c.init_checkpoint = ''  # A Hugging Face folder to start from.
  c.init_workdir = ''  # Or a jaxreason workdir.

  if arg == 'debug':
    c.data.num_eval = 4
    c.data.generate.num = 40
    c.data.generate.task.num_steps = 2
    c.model.update(num_layers=1, embed_dim=32, mlp_dim=64)
    c.seq_len = 256
    c.batch_size = 8
    c.total_steps = 2
    c.optim.warmup_steps = 1
    c.checkpoint_every = 1
    c.log_every = 1
    c.eval_max_new_tokens = 4
  elif arg:
    raise ValueError(f'Unknown variant {arg!r}: expected "" or "debug"')
  return c
