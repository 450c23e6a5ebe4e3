r"""Trains a process (or outcome / ranking) reward model.

  python experiments/prm.py --config=configs/prm/synthetic.py:debug \
      --workdir=/tmp/prm_debug

Running again with the same --workdir resumes from the latest checkpoint.
"""

import json
import os
import sys

if not __package__:  # `python experiments/prm.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging

from experiments import launch
from jaxreason.evals import processbench
from jaxreason.recipes import prm


def report(result):
  logging.info('Result: %s', json.dumps(result, indent=1, default=str))
  if 'eval' in result:
    print(processbench.markdown_table(result['eval'],
                                      'held-out synthetic ProcessBench'))


if __name__ == '__main__':
  launch.run(prm.train, report)
