r"""Held-out synthetic arithmetic problems: pass@k / maj@k / avg@k curves.

  python experiments/math_eval.py --config=configs/math_eval/synthetic.py \
      --workdir=runs/eval_synthetic --config.policy=runs/quickstart
  python experiments/math_eval.py --config=configs/math_eval/synthetic.py:debug \
      --workdir=/tmp/eval_synthetic_debug   # random tiny model

The problems are the held-out split of `task` (`sources.synthetic_splits`,
`is_held_out`: no recipe ever trains on them); the first 256 are the
problems the SFT recipe reports its held-out greedy accuracy on. Prompts are
raw (`question + '\n'`, what the SFT models were trained on); the answer is
the last \boxed{}, matched exactly, as in the SFT evaluation. 32 samples at
temperature 1.0, up to 80 new tokens. `task` must be the policy's training
task. Variants: '', 'debug'.
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.math_eval('synthetic', arg)
  c.task = config_defaults.synthetic_task()
  c.data_seed = 0
  c.prompt.chat = False
  c.grading = dict(extract='boxed', match='exact', grade_truncated=True)
  c.temperature = 1.0
  c.top_p = 1.0
  if not arg:
    c.num_problems = 256
    c.n = 32
    c.max_new_tokens = 80
    c.batch_prompts = 16
  else:
    c.task.num_steps = 2
  return c
