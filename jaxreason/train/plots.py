"""PNG plots of training curves (matplotlib, headless)."""

from __future__ import annotations

import os
from typing import Sequence

from jaxreason.train.metrics import read_metrics


def save_figure(fig, path: str, dpi: int = 110) -> str:
  """Lays out, writes and closes a matplotlib figure; returns `path`."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path


def plot_learning_curves(workdir: str,
                         keys: Sequence[str] = ('loss', 'accuracy'),
                         filename: str = 'learning_curves.png') -> str | None:
  """Plots `keys` of `workdir/metrics.jsonl` against step; returns the path."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  rows = read_metrics(workdir)
  keys = [k for k in keys if any(k in r for r in rows)]
  if not rows or not keys:
    return None
  fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2),
                           squeeze=False)
  for ax, key in zip(axes[0], keys):
    pts = [(r['step'], r[key]) for r in rows if key in r]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.5)
    ax.set_xlabel('step')
    ax.set_title(key)
    ax.grid(alpha=0.3)
  return save_figure(fig, os.path.join(workdir, filename))
