r"""Policy-optimisation demonstration: GRPO, GRPO+LoRA and DPO from one SFT model.

Runs each method's recipe from its config for several seeds, starting from the
same SFT policy, and reports held-out greedy pass@1 before and after with 95%
intervals: a Wilson interval per run, and a paired bootstrap interval of the
change (the same problems are graded before and after, so the change is
estimated from per-problem differences). Writes a JSON summary, a markdown
table and a PNG bar chart.

  python experiments/sft.py --config=configs/sft/synthetic.py \
      --workdir=runs/quickstart          # or `make quickstart`
  python tools/demo_policy_opt.py --policy=runs/quickstart \
      --workdir=runs/demo --seeds=0,1,2 --methods=grpo,grpo_lora,dpo

Finished runs (their result.json exists) are reused, so a killed demo resumes
where it stopped; delete a run's folder to redo it.
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from jaxreason.file_modules import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]

# method -> (recipe module, config file, config variant)
METHODS = {
    'grpo': ('grpo', 'configs/grpo/synthetic.py', ''),
    'grpo_lora': ('grpo', 'configs/grpo/synthetic.py', 'lora'),
    'dapo': ('grpo', 'configs/grpo/synthetic.py', 'dapo'),
    'dr_grpo': ('grpo', 'configs/grpo/synthetic.py', 'dr_grpo'),
    'dpo': ('dpo', 'configs/dpo/synthetic.py', ''),
    'dpo_rpo': ('dpo', 'configs/dpo/synthetic.py', 'rpo'),
}

_POLICY = flags.DEFINE_string('policy', 'runs/quickstart',
                              'SFT workdir (or HF folder) every run starts from.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/demo', 'Output folder.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds per method.')
_METHODS = flags.DEFINE_list('methods', ['grpo', 'grpo_lora', 'dpo'],
                             f'Any of {sorted(METHODS)}.')
_STEPS = flags.DEFINE_integer('steps', 0, 'Override total_steps (0: config).')
_BOOTSTRAP = flags.DEFINE_integer('bootstrap', 10_000,
                                  'Resamples for the paired interval.')


def _config(method: str, seed: int, policy: str, steps: int):
  recipe, path, variant = METHODS[method]
  config = load_config(REPO / path, variant)
  config.policy = policy
  config.seed = seed
  if steps:
    config.total_steps = steps
  return recipe, config


def paired_change(before: np.ndarray, after: np.ndarray, resamples: int,
                  seed: int = 0) -> dict:
  """Mean of after - before over problems, with a 95% bootstrap interval."""
  diff = after.astype(np.float64) - before.astype(np.float64)
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
  means = diff[idx].mean(axis=1)
  lo, hi = np.percentile(means, [2.5, 97.5])
  return {'change': float(diff.mean()), 'ci95': [float(lo), float(hi)],
          'fixed': int((diff > 0).sum()), 'broken': int((diff < 0).sum())}


def _git_commit() -> str:
  """HEAD's short hash, '+' when tracked files have uncommitted changes."""
  def git(*args):
    try:
      return subprocess.run(['git', '-C', str(REPO), *args], check=True,
                            capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
      return ''
  dirty = git('status', '--porcelain', '--untracked-files=no')
  return git('rev-parse', '--short=7', 'HEAD') + ('+' if dirty else '')


def run_one(method: str, seed: int, policy: str, workdir: str,
            steps: int) -> dict:
  out = os.path.join(workdir, f'{method}_seed{seed}')
  done = os.path.join(out, 'result.json')
  if os.path.exists(done):
    logging.info('%s seed %d: reusing %s', method, seed, done)
    with open(done) as f:
      return json.load(f)
  recipe_name, config = _config(method, seed, policy, steps)
  recipe = importlib.import_module(f'jaxreason.recipes.{recipe_name}')
  t0 = time.perf_counter()
  commit = _git_commit()  # The code this run trains with.
  result = recipe.train(config, out)
  result['wall_sec'] = time.perf_counter() - t0
  result['commit'] = commit
  with open(done, 'w') as f:  # The recipe wrote it; add the wall time.
    json.dump(result, f, indent=1, default=str)
  return result


def summarise(results: dict, resamples: int) -> list[dict]:
  rows = []
  for (method, seed), res in sorted(results.items()):
    b, a = res['eval_before'], res['eval_after']
    before = np.asarray(b['correct_counts']) > 0
    after = np.asarray(a['correct_counts']) > 0
    rows.append({
        'method': method, 'seed': seed, 'num_problems': len(before),
        'before': b['accuracy'], 'before_ci95': b['ci95'],
        'after': a['accuracy'], 'after_ci95': a['ci95'],
        **paired_change(before, after, resamples, seed),
        'wall_sec': res.get('wall_sec'),
        'commit': res.get('commit', '?'),
    })
  return rows


def markdown(rows: list[dict]) -> str:
  lines = ['| method | seed | problems | pass@1 before | pass@1 after | '
           'change (95% paired CI) | fixed / broken | minutes | commit |',
           '|---|---|---|---|---|---|---|---|---|']
  for r in rows:
    lines.append(
        f"| {r['method']} | {r['seed']} | {r['num_problems']} | "
        f"{r['before']:.3f} ({r['before_ci95'][0]:.3f}-"
        f"{r['before_ci95'][1]:.3f}) | {r['after']:.3f} "
        f"({r['after_ci95'][0]:.3f}-{r['after_ci95'][1]:.3f}) | "
        f"{r['change']:+.3f} ({r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}) | "
        f"{r['fixed']} / {r['broken']} | "
        f"{(r.get('wall_sec') or 0) / 60:.1f} | {r.get('commit', '?')} |")
  by_method: dict[str, list[dict]] = {}
  for r in rows:
    by_method.setdefault(r['method'], []).append(r)
  lines += ['', '| method | seeds | mean change | min | max |',
            '|---|---|---|---|---|']
  for m, rs in by_method.items():
    ch = [r['change'] for r in rs]
    lines.append(f'| {m} | {len(rs)} | {np.mean(ch):+.3f} | {min(ch):+.3f} | '
                 f'{max(ch):+.3f} |')
  return '\n'.join(lines)


def plot(rows: list[dict], path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4))
  x = np.arange(len(rows))
  for off, key, label in ((-0.2, 'before', 'before (SFT)'),
                          (0.2, 'after', 'after')):
    vals = np.array([r[key] for r in rows])
    ci = np.array([r[f'{key}_ci95'] for r in rows])
    ax.bar(x + off, vals, 0.4, label=label,
           yerr=[vals - ci[:, 0], ci[:, 1] - vals], capsize=3)
  ax.set_xticks(x, [f"{r['method']}\nseed {r['seed']}" for r in rows],
                fontsize=8)
  ax.set_ylabel('held-out greedy pass@1')
  ax.set_title(f"Synthetic task, {rows[0]['num_problems']} held-out problems "
               '(95% Wilson intervals)')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  sys.path.insert(0, str(REPO))
  unknown = set(_METHODS.value) - set(METHODS)
  if unknown:
    raise app.UsageError(f'--methods: unknown {sorted(unknown)}; valid: '
                         f'{sorted(METHODS)}')
  if not os.path.exists(_POLICY.value):
    raise app.UsageError(f'--policy={_POLICY.value} does not exist (run '
                         '`make quickstart` first, or pass an SFT workdir)')
  os.makedirs(_WORKDIR.value, exist_ok=True)
  results = {}
  for method in _METHODS.value:
    for seed in map(int, _SEEDS.value):
      logging.info('=== %s seed %d ===', method, seed)
      results[(method, seed)] = run_one(method, seed, _POLICY.value,
                                        _WORKDIR.value, _STEPS.value)
  rows = summarise(results, _BOOTSTRAP.value)
  table = markdown(rows)
  print(table)
  with open(os.path.join(_WORKDIR.value, 'summary.json'), 'w') as f:
    json.dump({'policy': _POLICY.value, 'rows': rows}, f, indent=1)
  with open(os.path.join(_WORKDIR.value, 'summary.md'), 'w') as f:
    f.write(table + '\n')
  plot(rows, os.path.join(_WORKDIR.value, 'pass_at_1.png'))


if __name__ == '__main__':
  app.run(main)
