r"""Tool-integrated reasoning on the synthetic task: SFT with a python tool.

  python experiments/tir.py --config=configs/tir/synthetic.py \
      --workdir=runs/tir
  python experiments/tir.py --config=configs/tir/synthetic.py:debug \
      --workdir=/tmp/tir_debug

Trains the tool model (in --workdir) and a matched no-tool model (in
WORKDIR/no_tool), then prints held-out accuracy with and without the tool.
"""

import json
import os
import sys

if not __package__:  # `python experiments/tir.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging

from experiments import launch
from jaxreason.recipes import tir


def report(result):
  logging.info('Result: %s', json.dumps(result.get('eval', {}).get(
      'accuracy'), indent=1))
  print(json.dumps(result.get('eval', {}).get('accuracy', {}), indent=1))


if __name__ == '__main__':
  launch.run(tir.train, report)
