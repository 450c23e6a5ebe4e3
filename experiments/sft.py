r"""Supervised fine-tuning.

  python experiments/sft.py --config=configs/sft/synthetic.py:debug \
      --workdir=/tmp/sft_debug

Running again with the same --workdir resumes from the latest checkpoint.
Multi-host (TPU pod slice): add --multihost on every host.
"""

import json
import os
import sys

if not __package__:  # `python experiments/sft.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging

from experiments import launch
from jaxreason.recipes import sft


def report(result):
  logging.info('Result: %s', json.dumps(result, indent=1, default=str))
  if 'eval' in result:
    for s in result['eval']['samples']:
      print(s['prompt'] + s['completion'] + f"   [gold {s['answer']}]\n")
    print(f"held-out greedy accuracy: {result['eval']['accuracy']:.3f} "
          f"on {result['eval']['num_problems']} problems")


if __name__ == '__main__':
  launch.run(sft.train, report)
