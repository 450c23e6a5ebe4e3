r"""Math evaluation: N samples per problem, pass@k / maj@k / avg@k curves.

  python experiments/math_eval.py --config=configs/math_eval/math500.py:debug \
      --workdir=/tmp/eval_debug
  python experiments/math_eval.py --config=configs/math_eval/synthetic.py \
      --workdir=runs/eval_synthetic --config.policy=runs/quickstart

Writes results.json, results.md, problems.jsonl, scaling_n.png and
scaling_flops.png into --workdir (see jaxreason/evals/math_eval.py).
"""

import os
import sys

if not __package__:  # `python experiments/math_eval.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import launch
from jaxreason.evals import math_eval
from jaxreason.evals import report as report_lib


def report(result):
  print(report_lib.markdown(result))
  print('files:', ', '.join(result['files'].values()))


if __name__ == '__main__':
  launch.run(math_eval.run, report)
