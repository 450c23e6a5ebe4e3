r"""Test-time search (best-of-N, voting, beam search, DVTS) against N.

  python experiments/search_eval.py --config=configs/search_eval/synthetic.py \
      --workdir=runs/search_eval --config.policy=runs/sft

Writes results.json, results.md and scaling.png to --workdir; see
jaxreason/recipes/search_eval.py.
"""

import os
import sys

if not __package__:  # `python experiments/search_eval.py`: as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import launch
from jaxreason.recipes import search_eval


def report(result):
  print(open(os.path.join(os.path.dirname(result['plot']),
                          'results.md')).read())
  print(f"plot: {result['plot']}  ({result['seconds']:.0f}s, "
        f"{result['num_problems']} problems)")


if __name__ == '__main__':
  launch.run(search_eval.run, report)
