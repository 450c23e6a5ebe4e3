r"""MATH-500 (the PRM800K test split): pass@k, maj@k, avg@k, per level/subject.

  python experiments/math_eval.py --config=configs/math_eval/math500.py \
      --workdir=runs/eval_math500 --config.policy=/ckpt/Qwen2.5-0.5B-Instruct
  python experiments/math_eval.py --config=configs/math_eval/math500.py:debug \
      --workdir=/tmp/eval_math500_debug   # random tiny model, 3 problems

`policy` is a Hugging Face folder or a jaxreason workdir ('' = a random
model). Qwen2.5-Math's chat prompt (answer in \boxed{}), 4 samples at
temperature 0.6, top-p 0.95, up to 2048 new tokens. Variants: '', 'debug'.
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.math_eval('math500', arg)
  if not arg:
    c.n = 4
  return c
