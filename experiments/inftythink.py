r"""InftyThink: segment-and-summary SFT, then iterative (or monolithic) eval.

  python experiments/inftythink.py --config=configs/inftythink/synthetic.py \
      --workdir=runs/infty
  python experiments/inftythink.py \
      --config=configs/inftythink/synthetic.py:monolithic --workdir=runs/mono
  python tools/inftythink_summary.py --infty=runs/infty --mono=runs/mono \
      --out=benchmarks/inftythink_synthetic

Running again with the same --workdir resumes from the latest checkpoint.
"""

import json
import os
import sys

if not __package__:  # `python experiments/inftythink.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging

from experiments import launch
from jaxreason.recipes import inftythink


def report(result):
  ev = result.get('eval', {})
  short = {k: v for k, v in ev.items()
           if k not in ('per_problem', 'samples')}
  logging.info('Result: %s', json.dumps(
      {'final_metrics': result.get('final_metrics'), 'eval': short},
      indent=1, default=str))
  if ev.get('mode') == 'inftythink':
    e = ev['eval']
    print(f"InftyThink: accuracy {e['accuracy']:.3f}, peak context "
          f"{e['peak_context_mean']:.1f} tokens (max {e['peak_context_max']},"
          f" cache {e['cache_size']}), {e['mean_iterations']:.2f} iterations")
  elif ev:
    for size, e in ev['eval'].items():
      print(f"Monolithic, cache {size}: accuracy {e['accuracy']:.3f}, peak "
            f"context {e['peak_context_mean']:.1f} tokens, truncated "
            f"{e['truncated']}/{ev['num_problems']}")


if __name__ == '__main__':
  launch.run(inftythink.train, report)
