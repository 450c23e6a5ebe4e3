r"""AIME 2024 (I and II, 30 problems): pass@k, maj@k, avg@k over 32 samples.

  python experiments/math_eval.py --config=configs/math_eval/aime24.py \
      --workdir=runs/eval_aime24 --config.policy=/ckpt/Qwen2.5-Math-1.5B-Instruct
  python experiments/math_eval.py --config=configs/math_eval/aime24.py:debug \
      --workdir=/tmp/eval_aime24_debug   # random tiny model, 3 problems

`policy` is a Hugging Face folder or a jaxreason workdir ('' = a random
model). Few problems, so many samples each (32, temperature 0.6, top-p
0.95, up to 4096 new tokens) for low-variance avg@32 and the maj@k curve.
Variants: '', 'debug'.
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.math_eval('aime24', arg)
  if not arg:
    c.n = 32
    c.max_new_tokens = 4096
  return c
