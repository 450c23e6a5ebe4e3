r"""GSM8K test (1319 problems, OpenAI's original file): pass@k, maj@k, avg@k.

  python experiments/math_eval.py --config=configs/math_eval/gsm8k.py \
      --workdir=runs/eval_gsm8k --config.policy=/ckpt/Qwen2.5-0.5B-Instruct
  python experiments/math_eval.py --config=configs/math_eval/gsm8k.py:debug \
      --workdir=/tmp/eval_gsm8k_debug   # random tiny model, 3 problems

The reference answer is the text after '####'. 4 samples at temperature
0.6, top-p 0.95, up to 1024 new tokens. Variants: '', 'debug'.
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.math_eval('gsm8k', arg)
  if not arg:
    c.n = 4
    c.max_new_tokens = 1024
  return c
