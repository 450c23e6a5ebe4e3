"""The quickstart's results table, the papers' claims checked on it, plots.

`write(config, workdir, stages)` reads the stages' outputs in `workdir`
(see recipes/quickstart.py) and writes `workdir/report/`:

  results.json / results.md  one row per (policy, method, N): accuracy on
                             the held-out problems, its 95% Wilson interval,
                             tokens per problem; the TIR rows on the
                             large-number split; seconds per stage
  claims                     each claim of the papers as measured here:
                             holds (point estimates), whether the 95%
                             intervals separate, and the exact McNemar
                             p-value where both sides ran on the same
                             problems
  learning_curves.png        the training curves of every stage
  accuracy_vs_n.png          accuracy against N per search method
  accuracy_by_difficulty.png accuracy per chain length (the task mixes them)
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import ml_collections
import numpy as np

from jaxreason.data import sources
from jaxreason.evals.pass_at_k import wilson_interval
from jaxreason.train.metrics import read_metrics
from jaxreason.train.plots import save_figure

REPORT_DIR = 'report'
METHOD_NAMES = {'greedy': 'greedy', 'majority': 'majority vote',
                'best_of_n': 'best-of-N', 'weighted_best_of_n':
                'weighted best-of-N', 'beam_search': 'beam search',
                'dvts': 'DVTS'}
# (stage dir, metric, title) of the learning-curve panels.
CURVES = (('sft', 'loss', 'SFT loss'), ('prm', 'loss', 'PRM loss'),
          ('thinkprm', 'loss', 'ThinkPRM loss'),
          ('grpo', 'reward', 'GRPO reward'),
          ('tir', 'loss', 'TIR (tool model) loss'))


def _load(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _eval_results(workdir: str, config) -> dict[str, dict]:
  """{run name: search_eval results.json} of the eval stage."""
  out = {}
  for name in config.eval.runs:
    path = os.path.join(workdir, 'eval', name, 'results.json')
    if os.path.exists(path):
      out[name] = _load(path)
  return out


def rows(config, workdir: str) -> list[dict[str, Any]]:
  """Table rows: greedy at N=1 and each other method at every N."""
  out = []
  results = _eval_results(workdir, config)
  # The SFT policy's runs first, then GRPO's (config order is alphabetical).
  order = sorted(results, key=lambda n: config.eval.runs[n].policy != 'sft')
  for name in order:
    res, run = results[name], config.eval.runs[name]
    for method, by_n in res['summary'].items():
      for n, r in sorted(by_n.items(), key=lambda kv: int(kv[0])):
        verifier = run.verifier if method not in ('greedy', 'majority') else ''
        out.append({
            'run': name, 'policy': run.policy, 'method': method,
            'verifier': verifier, 'n': int(n), 'accuracy': r['accuracy'],
            'ci95': r['ci95'], 'tokens': r['tokens'],
            'num_problems': res['num_problems'], 'split': 'held-out',
            # Per problem, for the paired test of `claims`.
            'correct': [bool(p['correct'])
                        for p in res['per_problem'][method][n]]})
  tir_done = os.path.join(workdir, 'tir', 'done.json')
  if os.path.exists(tir_done):
    t = _load(tir_done)['summary']
    num = int(t['num_problems'])
    for key, acc in t['accuracy'].items():
      tokens = (t['tool_model_with_tool'].get('mean_generated_tokens')
                if key == 'tool_model_with_tool' else None)
      out.append({'run': 'tir', 'policy': key, 'method': 'tir'
                  if key == 'tool_model_with_tool' else 'greedy',
                  'verifier': '', 'n': 1, 'accuracy': acc,
                  'ci95': list(wilson_interval(acc * num, num)),
                  'tokens': tokens, 'num_problems': num,
                  'split': 'large numbers'})
  return out


def _find(table, **kw) -> dict | None:
  for r in table:
    if all(r.get(k) == v for k, v in kw.items()):
      return r
  return None


def mcnemar_p(a: Sequence[bool], b: Sequence[bool]) -> float:
  """Exact two-sided McNemar p-value of paired per-problem outcomes.

  Only the discordant problems count (a right and b wrong, or the reverse):
  under "no difference" each is either way with probability 1/2.
  """
  if len(a) != len(b):
    raise ValueError(f'paired outcomes of different lengths: {len(a)}, '
                     f'{len(b)}')
  a_only = sum(x and not y for x, y in zip(a, b))
  b_only = sum(y and not x for x, y in zip(a, b))
  n, k = a_only + b_only, min(a_only, b_only)
  if n == 0:
    return 1.0
  tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
  return min(1.0, 2 * tail)


def _claim(text: str, a: dict | None, b: dict | None) -> dict[str, Any]:
  if a is None or b is None:
    return {'claim': text, 'holds': None, 'note': 'not measured'}
  out = {'claim': text, 'a': a['accuracy'], 'b': b['accuracy'],
         'holds': a['accuracy'] > b['accuracy'],
         # Separated 95% intervals: a conservative test of the difference.
         'separated': a['ci95'][0] > b['ci95'][1], 'p_value': None}
  if 'correct' in a and 'correct' in b:  # The same problems: a paired test.
    out['p_value'] = mcnemar_p(a['correct'], b['correct'])
  return out


def claims(table: list[dict], max_n: int) -> list[dict[str, Any]]:
  """The four claims of the issue, measured on `table`."""
  out = [
      _claim('GRPO above SFT at pass@1 (greedy)',
             _find(table, policy='grpo', method='greedy'),
             _find(table, policy='sft', method='greedy')),
      _claim(f'majority@{max_n} above greedy (GRPO policy)',
             _find(table, policy='grpo', method='majority', n=max_n),
             _find(table, policy='grpo', method='greedy'))]
  majority = _find(table, policy='grpo', method='majority', n=max_n)
  for v in sorted({r['verifier'] for r in table if r['verifier']}):
    for method in ('best_of_n', 'weighted_best_of_n'):
      name = METHOD_NAMES[method].replace('-N', f'-{max_n}')
      row = _find(table, policy='grpo', method=method, verifier=v, n=max_n)
      if row is not None or method == 'best_of_n':
        out.append(_claim(
            f'{name} with the {v} verifier above majority@{max_n}', row,
            majority))
  out.append(_claim('tool use above no tool on large numbers',
                    _find(table, policy='tool_model_with_tool'),
                    _find(table, policy='no_tool_model')))
  return out


def markdown(table: list[dict], claim_rows: list[dict],
             seconds: dict[str, float]) -> str:
  lines = ['| policy | method | verifier | N | accuracy | 95% CI | '
           'tokens / problem | split |', '|' + '---|' * 8]
  for r in table:
    tok = '' if r['tokens'] is None else f"{r['tokens']:.0f}"
    lines.append(
        f"| {r['policy']} | {METHOD_NAMES.get(r['method'], r['method'])} | "
        f"{r['verifier'] or '-'} | {r['n']} | {r['accuracy']:.3f} | "
        f"{r['ci95'][0]:.3f}-{r['ci95'][1]:.3f} | {tok} | {r['split']} |")
  lines += ['', '| claim | measured | holds | 95% intervals separate | '
            'paired p (McNemar) |', '|---|---|---|---|---|']
  for c in claim_rows:
    if c['holds'] is None:
      lines.append(f"| {c['claim']} | not measured | - | - | - |")
    else:
      p = c.get('p_value')
      lines.append(f"| {c['claim']} | {c['a']:.3f} vs {c['b']:.3f} | "
                   f"{'yes' if c['holds'] else 'no'} | "
                   f"{'yes' if c['separated'] else 'no'} | "
                   f"{'-' if p is None else f'{p:.3f}'} |")
  lines += ['', '| stage | seconds |', '|---|---|']
  lines += [f'| {s} | {t:.0f} |' for s, t in seconds.items()]
  lines.append(f'| total | {sum(seconds.values()):.0f} |')
  return '\n'.join(lines) + '\n'


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_learning_curves(workdir: str, path: str) -> str | None:
  panels = []
  for stage, key, title in CURVES:
    pts = [(r['step'], r[key]) for r in read_metrics(
        os.path.join(workdir, stage)) if key in r]
    if pts:
      panels.append((title, pts))
  if not panels:
    return None
  plt = _plt()
  fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3),
                           squeeze=False)
  for ax, (title, pts) in zip(axes[0], panels):
    ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.4)
    ax.set_title(title)
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
  return save_figure(fig, path, dpi=100)


def plot_accuracy_vs_n(table: list[dict], path: str) -> str | None:
  series: dict[str, list[dict]] = {}
  for r in table:
    if r['split'] == 'held-out' and r['method'] != 'greedy':
      label = (f"{r['policy']} {METHOD_NAMES[r['method']]}" +
               (f" ({r['verifier']})" if r['verifier'] else ''))
      series.setdefault(label, []).append(r)
  if not series:
    return None
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  for label, rs in series.items():
    rs = sorted(rs, key=lambda r: r['n'])
    ns = [r['n'] for r in rs]
    ax.plot(ns, [r['accuracy'] for r in rs], marker='o', lw=1.4, label=label)
    ax.fill_between(ns, [r['ci95'][0] for r in rs],
                    [r['ci95'][1] for r in rs], alpha=0.08)
  for r in table:
    if r['method'] == 'greedy' and r['split'] == 'held-out':
      ax.axhline(r['accuracy'], ls='--', lw=1, color='gray')
      ax.annotate(f"{r['policy']} greedy", (1, r['accuracy']), fontsize=7)
  ax.set_xscale('log', base=2)
  ax.set_xlabel('N (samples per problem)')
  ax.set_ylabel('held-out accuracy')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return save_figure(fig, path, dpi=100)


def by_difficulty(config, workdir: str, max_n: int
                  ) -> dict[str, dict[int, float]]:
  """{policy method: {chain length: accuracy}} at N = 1 (greedy) or max_n."""
  data = config.search.data
  _, problems = sources.synthetic_splits(data.task.to_dict(), 0,
                                         int(data.num_eval), int(data.seed))
  steps = np.asarray([p.num_steps for p in problems])
  out = {}
  for name, res in _eval_results(workdir, config).items():
    run = config.eval.runs[name]
    for method, by_n in res['per_problem'].items():
      n = '1' if method == 'greedy' else str(max_n)
      if n not in by_n:
        continue
      ok = np.asarray([row['correct'] for row in by_n[n]], float)
      label = f"{run.policy} {METHOD_NAMES[method]}" + (
          f" ({run.verifier})" if method not in ('greedy', 'majority') else '')
      if method != 'greedy':
        label += f'@{max_n}'
      out[label] = {int(k): float(ok[steps == k].mean())
                    for k in sorted(set(steps.tolist()))}
  return out


def plot_by_difficulty(acc: dict[str, dict[int, float]], path: str
                       ) -> str | None:
  if not acc:
    return None
  plt = _plt()
  lengths = sorted({k for v in acc.values() for k in v})
  fig, ax = plt.subplots(figsize=(7, 4))
  width = 0.8 / len(acc)
  for i, (label, by_k) in enumerate(acc.items()):
    ax.bar(np.arange(len(lengths)) + i * width,
           [by_k.get(k, 0.0) for k in lengths], width, label=label)
  ax.set_xticks(np.arange(len(lengths)) + 0.4 - width / 2)
  ax.set_xticklabels([f'{k} steps' for k in lengths])
  ax.set_ylabel('held-out accuracy')
  ax.legend(fontsize=6, ncol=2)
  ax.grid(alpha=0.3, axis='y')
  return save_figure(fig, path, dpi=100)


def write(config: ml_collections.ConfigDict, workdir: str,
          stages: Sequence[str]) -> dict[str, Any]:
  """Writes the report files; returns the table, claims and plot paths."""
  out_dir = os.path.join(workdir, REPORT_DIR)
  os.makedirs(out_dir, exist_ok=True)
  max_n = max(int(n) for n in config.search.ns)
  table = rows(config, workdir)
  claim_rows = claims(table, max_n)
  seconds = {}
  for s in stages:
    p = os.path.join(workdir, s, 'done.json')
    if s != 'report' and os.path.exists(p):
      seconds[s] = _load(p)['seconds']
  difficulty = by_difficulty(config, workdir, max_n)
  result = {'table': table, 'claims': claim_rows, 'seconds': seconds,
            'by_difficulty': difficulty, 'max_n': max_n}
  with open(os.path.join(out_dir, 'results.json'), 'w') as f:
    json.dump(result, f, indent=1)
  md = markdown(table, claim_rows, seconds)
  with open(os.path.join(out_dir, 'results.md'), 'w') as f:
    f.write(md)
  result['plots'] = [p for p in (
      plot_learning_curves(workdir, os.path.join(out_dir,
                                                 'learning_curves.png')),
      plot_accuracy_vs_n(table, os.path.join(out_dir, 'accuracy_vs_n.png')),
      plot_by_difficulty(difficulty, os.path.join(
          out_dir, 'accuracy_by_difficulty.png'))) if p]
  result['markdown'] = md
  return result
