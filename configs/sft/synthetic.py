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

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.base()
  c.tokenizer = dict(kind='char')
  c.data = config_defaults.synthetic_data(num_train=50_000)
  c.model = config_defaults.small_model()  # vocab_size=0: the tokenizer's.
  config_defaults.sft_training(c, total_steps=800)
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
    config_defaults.sft_debug(c)
    c.data.num_train = 64
  unknown = set(variants) - {'debug', 'lora'}
  if unknown:
    raise ValueError(f'Unknown variant(s) {sorted(unknown)} in {arg!r}: '
                     'expected "", "debug", "lora" (comma-separated)')
  return c
