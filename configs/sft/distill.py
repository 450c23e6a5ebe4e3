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

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.base()
  c.tokenizer = dict(kind='char')
  c.data = dict(
      source='jsonl', path='', prompt_key='prompt',
      completion_key='completion', num_eval=256,
      # Synthetic teacher traces when `path` is empty (num=0: off).
      generate=dict(num=0, seed=0, reflect_prob=0.5,
                    task=config_defaults.synthetic_task()))
  c.model = config_defaults.small_model()
  c.model.max_position_embeddings = 1024
  config_defaults.sft_training(c, total_steps=1500)
  c.seq_len = 512  # Traces are long: ~300 characters for 4 steps.
  c.optim.lr = 2e-3
  c.checkpoint_every = 250
  c.eval_max_new_tokens = 320
  c.init_workdir = ''  # Or a jaxreason workdir.

  if arg == 'debug':
    config_defaults.sft_debug(c)
    c.data.generate.num = 40
    c.data.generate.task.num_steps = 2
    c.seq_len = 256
  elif arg:
    raise ValueError(f'Unknown variant {arg!r}: expected "" or "debug"')
  return c
