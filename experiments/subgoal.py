r"""SubgoalXL-style expert iteration with a checked subgoal proof language.

  python experiments/subgoal.py --config=configs/subgoal/synthetic.py \
      --workdir=runs/subgoal --config.summary_dir=benchmarks/subgoal_synthetic
  python experiments/subgoal.py --config=configs/subgoal/synthetic.py:debug \
      --workdir=/tmp/subgoal_debug

Each run starts from scratch (use a fresh --workdir); see
jaxreason/recipes/subgoal.py.
"""

import json
import os
import sys

if not __package__:  # `python experiments/subgoal.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging

from experiments import launch
from jaxreason.recipes import subgoal


def report(result):
  logging.info('Result: %s', json.dumps(result, indent=1, default=str))
  for arm, rows in result['arms'].items():
    print(f'{arm}: ' + ', '.join(
        f"round {r['round']}: {r['proved_share']:.3f} "
        f"({r['cumulative_checker_calls']} calls)" for r in rows))


if __name__ == '__main__':
  launch.run(subgoal.train, report)
