r"""ProcessBench: a verifier's earliest-wrong-step F1 on the four subsets.

  python experiments/processbench.py --config=configs/processbench/prm.py \
      --workdir=runs/pb --config.verifier.workdir=runs/prm --config.limit=50

Writes workdir/processbench_{real,synthetic}.{json,md}.
"""

import os
import sys

if not __package__:  # `python experiments/processbench.py`: as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import launch
from jaxreason.evals import processbench as pb
from jaxreason.recipes import processbench


def report(result):
  for key, res in result.items():
    print(pb.markdown_table(res, f'ProcessBench ({key})'))


if __name__ == '__main__':
  launch.run(processbench.evaluate, report)
