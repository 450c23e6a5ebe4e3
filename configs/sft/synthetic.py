r"""SFT of a small transformer on the synthetic arithmetic task.

  python experiments/sft.py --config=configs/sft/synthetic.py --workdir=/tmp/sft
  python experiments/sft.py --config=configs/sft/synthetic.py:debug \
      --workdir=/tmp/sft_debug --config.optim.lr=1e-3

Variants (after the colon): '' (default: 4-step mod-10 chains with + - *,
in the bare form "Start at 8. Subtract 5, add 3, ...", a 0.31M-parameter
model, 800 steps of 32 x 256 packed tokens: about 7 minutes on 2 CPU cores),
'debug' (seconds), 'lora' (rank-8 adapters on every projection; combine as
'debug,lora'; with --config.init_checkpoint=HF_DIR for a pretrained base and
--config.export_hf=DIR to write the merged model).
"""

import ml_collections


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.mesh = (('data', 1), ('fsdp', -1), ('tensor', 1))
  c.sharding_rules = ()  # ((logical_name, mesh_axes), ...) overrides.

  c.tokenizer = dict(kind='char')
  c.data = dict(
      source='synthetic',
      task=dict(num_steps=4, min_operand=1, max_operand=9, modulus=10,
                ops=('+', '-', '*'), word_problem=False),
      num_train=50_000, num_eval=256, seed=0)

  # vocab_size=0 takes the tokenizer's vocabulary size.
  c.model = dict(vocab_size=0, num_layers=3, embed_dim=96, mlp_dim=256,
                 num_heads=4, num_kv_heads=2, qkv_bias=True,
                 tie_embeddings=True, rope_theta=10000.0,
                 max_position_embeddings=512)
  c.seq_len = 256
  c.batch_size = 32
  c.pack = True
  c.grad_accum_steps = 1

  c.total_steps = ml_collections.FieldReference(800)
  c.optim = dict(name='adamw', lr=3e-3, schedule='warmup_cosine',
                 warmup_steps=100, end_lr_ratio=0.05, b1=0.9, b2=0.98,
                 weight_decay=0.01, clip_norm=1.0)
  c.optim.total_steps = c.get_ref('total_steps')

  c.checkpoint_every = 200
  c.log_every = 50
  c.eval_max_new_tokens = 80
  c.init_checkpoint = ''  # A Hugging Face folder to start from.
  c.export_hf = ''  # If set, the final (LoRA-merged) params as an HF folder.

  # LoRA (jaxreason/models/lora.py); rank 0 is off (full fine-tuning).
  # targets: regexes searched in kernel paths (layers_0/mlp/up_proj/kernel).
  c.lora = dict(rank=0, alpha=16.0, dropout=0.0,
                targets=('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj',
                         'up_proj', 'down_proj'))

  variants = arg.split(',') if arg else []
  if 'lora' in variants:  # Rank-8 adapters on every projection.
    c.lora.update(rank=8, alpha=16.0, dropout=0.05)
  if 'debug' in variants:
    c.data.num_train = 64
    c.data.num_eval = 4
    c.model.update(num_layers=1, embed_dim=32, mlp_dim=64)
    c.seq_len = 128
    c.batch_size = 8
    c.total_steps = 2
    c.optim.warmup_steps = 1
    c.checkpoint_every = 1
    c.log_every = 1
    c.eval_max_new_tokens = 4
  unknown = set(variants) - {'debug', 'lora'}
  if unknown:
    raise ValueError(f'Unknown variant(s) {sorted(unknown)} in {arg!r}: '
                     'expected "", "debug", "lora" (comma-separated)')
  return c
