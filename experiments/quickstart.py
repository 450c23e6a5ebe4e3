"""The whole reasoning pipeline on the synthetic task (what make quickstart runs).

  python experiments/quickstart.py --config=configs/quickstart.py \
      --workdir=runs/quickstart
  python experiments/quickstart.py --config=configs/quickstart.py:debug \
      --workdir=/tmp/qs_debug

Running again with the same --workdir skips the finished stages and resumes
the one that was killed. The table, claims and plots land in
WORKDIR/report/ (jaxreason/recipes/quickstart.py).
"""

import os
import sys

if not __package__:  # `python experiments/quickstart.py`: import as `-m`.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import launch
from jaxreason.recipes import quickstart


def report(result):
  rep = result.get('report', {}).get('summary', {})
  if rep.get('markdown'):
    print(rep['markdown'])
    for p in rep.get('plots', []):
      print('plot:', p)
  for stage, r in result.items():
    print(f"{stage:>10}: {r['seconds']:.0f} s")


if __name__ == '__main__':
  launch.run(quickstart.train, report)
