"""Markdown tables and scaling-curve PNGs of a math_eval result.

  files = report.write(result, workdir)
  -> {'markdown': 'workdir/results.md', 'scaling_n': 'workdir/scaling_n.png',
      'scaling_flops': 'workdir/scaling_flops.png'}

The plots follow jaxreason/train/plots.py (headless matplotlib, small
panels, light grid): accuracy (pass@n, maj@n, avg@n) against the number of
samples n on a log2 axis, and against the mean forward FLOPs per problem
spent by those n samples (prompt encoded once) on a log axis.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

CURVES = (('pass', 'pass@n (unbiased, from all N)'),
          ('pass_first', 'pass@n (first n samples)'),
          ('maj', 'maj@n'), ('avg', 'avg@n'))


def _pct(x: float) -> str:
  return f'{100 * x:.1f}'


def markdown(result: Mapping[str, Any]) -> str:
  """The curve, the breakdowns and the budget as Markdown tables."""
  n = result['n']
  lines = [f"# math_eval: {result['benchmark']}", '',
           f"Policy: `{result.get('policy') or 'random'}`; "
           f"{result['num_problems']} problems x {n} samples; "
           f"truncated samples {_pct(result['truncated'])}%, no answer "
           f"{_pct(result['no_answer'])}%.", '',
           '## Accuracy (%) against samples', '',
           '| n | pass@n | pass@n (first n) | maj@n | avg@n | tokens / '
           'problem | FLOPs / problem |',
           '|---|---|---|---|---|---|---|']
  for p in result['curve']:
    lines.append(f"| {p['n']} | {_pct(p['pass'])} | {_pct(p['pass_first'])} "
                 f"| {_pct(p['maj'])} | {_pct(p['avg'])} | "
                 f"{p['tokens']:.1f} | {p['flops']:.3g} |")
  for key, title in (('by_level', 'level'), ('by_subject', 'subject')):
    groups = result.get(key) or {}
    if not groups:
      continue
    lines += ['', f'## By {title} (%)', '',
              f'| {title} | problems | pass@1 | avg@{n} | maj@{n} | '
              f'pass@{n} |', '|---|---|---|---|---|---|']
    for value, g in groups.items():
      lines.append(f"| {value} | {g['num_problems']} | {_pct(g['pass@1'])} "
                   f"| {_pct(g[f'avg@{n}'])} | {_pct(g[f'maj@{n}'])} | "
                   f"{_pct(g[f'pass@{n}'])} |")
  b = result['budget_per_problem']
  lines += ['', f'## Budget per problem (all {n} samples)', '',
            f"generated tokens {b['policy_tokens']:.1f}, prompt tokens "
            f"{b['prompt_tokens']:.1f} (encoded once), forward FLOPs "
            f"{b['flops']:.4g}.", '']
  return '\n'.join(lines)


def plot(result: Mapping[str, Any], workdir: str) -> dict[str, str]:
  """scaling_n.png and scaling_flops.png; returns their paths."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  curve = result['curve']
  paths = {}
  for name, xkey, xlabel, base in (
      ('scaling_n', 'n', 'samples per problem (n)', 2),
      ('scaling_flops', 'flops', 'forward FLOPs per problem', 10)):
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    xs = [p[xkey] for p in curve]
    for key, label in CURVES:
      ax.plot(xs, [p[key] for p in curve], marker='o', ms=3, lw=1.5,
              label=label)
    if len(set(xs)) > 1 and min(xs) > 0:
      ax.set_xscale('log', base=base)
    ax.set_xlabel(xlabel)
    ax.set_ylabel('accuracy')
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{result['benchmark']} ({result['num_problems']} problems)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(workdir, f'{name}.png')
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths[name] = path
  return paths


def write(result: Mapping[str, Any], workdir: str) -> dict[str, str]:
  """results.md and the PNGs in workdir; returns {'markdown': path, ...}."""
  path = os.path.join(workdir, 'results.md')
  with open(path, 'w') as f:
    f.write(markdown(result))
  return {'markdown': path, **plot(result, workdir)}
