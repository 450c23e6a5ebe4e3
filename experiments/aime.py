r"""World-model imitation from observation (AIME, AIME-v2) and its baselines.

  python experiments/aime.py --config=configs/aime/expert.py:walker-stand \
      --workdir=runs/aime/walker-stand/expert
  python experiments/aime.py --config=configs/aime/bco.py:walker-stand \
      --workdir=runs/aime/walker-stand/bco \
      --config.data_dir=runs/aime/walker-stand/expert/data

Each config names its stage (expert, bco, pretrain, aime, aime_v2); see
jaxreason/recipes/aime.py and tools/aime_study.py for the whole study.
Running again with the same --workdir resumes. Set MUJOCO_GL=egl for pixels.
"""

import json
import os
import sys

if not __package__:  # `python experiments/aime.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import launch
from jaxreason.recipes import aime


def report(result):
  print(json.dumps({k: v for k, v in result.items()
                    if not isinstance(v, list)}, indent=1, default=float))


if __name__ == '__main__':
  launch.run(aime.train, report)
