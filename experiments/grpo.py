r"""GRPO / DAPO / Dr.GRPO.

  python experiments/grpo.py --config=configs/grpo/synthetic.py:debug \
      --workdir=/tmp/grpo_debug

Running again with the same --workdir resumes. Multi-host: add --multihost.
"""

import json
import os
import sys

if not __package__:  # `python experiments/grpo.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import launch
from jaxreason.recipes import grpo


def report(result):
  print(json.dumps({'held_out_greedy_pass@1': launch.eval_summary(result),
                    'final_metrics': result['final_metrics']}, indent=1))


if __name__ == '__main__':
  launch.run(grpo.train, report)
