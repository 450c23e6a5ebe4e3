r"""DPO on semi-on-policy preference pairs.

  python experiments/dpo.py --config=configs/dpo/synthetic.py:debug \
      --workdir=/tmp/dpo_debug

Running again with the same --workdir resumes (the pairs are read back from
workdir/pairs.jsonl). Multi-host: add --multihost.
"""

import json
import os
import sys

if not __package__:  # `python experiments/dpo.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import launch
from jaxreason.recipes import dpo


def report(result):
  print(json.dumps({'pairs': result['pairs'],
                    'held_out_greedy_pass@1': launch.eval_summary(result),
                    'final_metrics': result['final_metrics']}, indent=1))


if __name__ == '__main__':
  launch.run(dpo.train, report)
