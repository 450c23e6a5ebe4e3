r"""Hint-RFT (START): hinted trajectories that beat plain ones, SFT, RFT data.

  python experiments/hint_rft.py --config=configs/hint_rft/synthetic.py \
      --workdir=runs/hint_rft --config.init_workdir=runs/tir
  python experiments/hint_rft.py --config=configs/hint_rft/synthetic.py:debug \
      --workdir=/tmp/hint_rft_debug

Plain vs hinted inference of the policy, keeps what the hint fixed, fine-tunes
on it in --workdir and rejection-samples more data (WORKDIR/hint_rft.json).
"""

import json
import os
import sys

if not __package__:  # `python experiments/hint_rft.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging

from experiments import launch
from jaxreason.recipes import hint_rft


def report(result):
  ev = result.get('eval', {})
  summary = {k: ev[k] for k in ('selection', 'rft_selection') if k in ev}
  summary.update({f'{k}_accuracy': ev[k]['accuracy'] for k in (
      'plain', 'hinted', 'fine_tuned_samples') if k in ev})
  logging.info('Result: %s', json.dumps(summary))
  print(json.dumps(summary, indent=1))


if __name__ == '__main__':
  launch.run(hint_rft.train, report)
