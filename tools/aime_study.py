r"""The imitation-from-observation study: BCO, AIME, AIME-v2 and its ablations.

For each task: a SAC expert and the datasets, the embodiment world model and
the demonstrations' action-free model (once per task), then for each seed
BCO(0) (+ BC with true actions), AIME and AIME-v2 with its ablations. Every
stage is a config under configs/aime/ run through the recipe, in
WORKDIR/TASK/STAGE[_seedS]; finished stages (result.json) are reused, and an
unfinished one resumes from its checkpoint. Writes WORKDIR/summary.{json,md}
and WORKDIR/TASK_curves.png (AIME-v2 normalised return vs environment steps).

  python tools/aime_study.py --workdir=runs/aime --tasks=walker-stand \
      --seeds=0,1,2
  python tools/aime_study.py --workdir=/tmp/study --tasks=walker-stand \
      --seeds=0 --debug        # every stage in seconds (stand-in data)

Returns are normalised by the demonstrations' mean return.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from jaxreason.file_modules import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]

# name -> (config file, variants after the task)
METHODS = {
    'bco': ('bco.py', ''),
    'aime': ('aime.py', ''),
    'aime_v2': ('aime.py', 'v2'),
    'aime_v2_no_reg': ('aime.py', 'v2,no_reg'),
    'aime_v2_no_reward': ('aime.py', 'v2,no_reward'),
    'aime_v2_adversarial': ('aime.py', 'v2,adversarial'),
}

_WORKDIR = flags.DEFINE_string('workdir', 'runs/aime', 'Output folder.')
_TASKS = flags.DEFINE_list('tasks', ['walker-stand', 'finger-spin'],
                           'dm_control tasks (domain-task).')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds per method.')
_METHODS = flags.DEFINE_list(
    'methods', ['bco', 'aime', 'aime_v2', 'aime_v2_no_reg',
                'aime_v2_no_reward'], f'Any of {sorted(METHODS)}.')
_DEBUG = flags.DEFINE_bool('debug', False, "Every stage's ':debug' variant.")
_INIT = flags.DEFINE_bool(
    'init_from_aime', True, 'AIME-v2 runs start from the AIME policy of the '
    'same seed (run `aime` first in --methods).')
_SUMMARY_ONLY = flags.DEFINE_bool(
    'summary_only', False, 'Run nothing: summarise the finished stages.')
_OVERRIDES = flags.DEFINE_multi_string(
    'set', [], 'FIELD=VALUE overrides for every stage (Python literals), '
    'e.g. --set=total_steps=10 (applied only where the field exists).')


def _config(file: str, task: str, variants: str, debug: bool, **fields):
  arg = ','.join(p for p in (task, variants, 'debug' if debug else '') if p)
  config = load_config(REPO / 'configs' / 'aime' / file, arg)
  for k, v in fields.items():
    config[k] = v
  for item in _OVERRIDES.value:
    k, _, v = item.partition('=')
    if k in config:
      config[k] = type(config[k])(eval(v))  # pylint: disable=eval-used
  return config


def run_stage(out: str, config) -> dict | None:
  done = os.path.join(out, 'result.json')
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  if _SUMMARY_ONLY.value:
    return None
  from jaxreason.recipes import aime  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  logging.info('=== %s (%s) ===', out, config.stage)
  result = aime.train(config, out)
  result['wall_sec'] = time.perf_counter() - t0
  with open(done, 'w') as f:
    json.dump(result, f, indent=1, default=float)
  return result


def run_task(task: str, seeds: list[int], methods: list[str], root: str,
             debug: bool) -> dict:
  base = os.path.join(root, task)
  expert = run_stage(os.path.join(base, 'expert'),
                     _config('expert.py', task, '', debug))
  if expert is None:
    return {'demo_return': float('nan'), 'methods': {}}
  data_dir = os.path.join(base, 'expert', 'data')
  wm_dir, demo_dir = os.path.join(base, 'wm'), os.path.join(base, 'demo_wm')
  run_stage(wm_dir, _config('pretrain.py', task, '', debug,
                            data_dir=data_dir))
  run_stage(demo_dir, _config('pretrain.py', task, 'demos', debug,
                              data_dir=data_dir))
  results = {'demo_return': expert['demo_return'], 'methods': {}}
  for method in methods:
    file, variants = METHODS[method]
    for seed in seeds:
      config = _config(file, task, variants, debug, data_dir=data_dir,
                       seed=seed)
      if 'world_model_dir' in config:
        config.world_model_dir = wm_dir
        config.demo_model_dir = demo_dir
      if config.stage == 'aime_v2' and 'aime' in methods and _INIT.value:
        # Online fine-tuning of the offline AIME policy of the same seed.
        config.init_policy_dir = os.path.join(base, f'aime_seed{seed}')
      res = run_stage(os.path.join(base, f'{method}_seed{seed}'), config)
      if res is None:  # --summary_only and not run.
        continue
      results['methods'].setdefault(method, []).append(res)
      if method == 'bco' and 'bc_true_actions' in res:
        results['methods'].setdefault('bc_true_actions', []).append(
            {'eval': res['bc_true_actions']})
  return results


def _final(method: str, res: dict) -> float:
  if method == 'bco':
    return res['bco']['normalised_return']
  return res['eval']['normalised_return']


def summarise(all_results: dict) -> tuple[list[dict], str]:
  rows = []
  for task, r in all_results.items():
    for method, runs in r['methods'].items():
      vals = [_final(method, x) for x in runs]
      # Mean over a run's evaluations (its learning curve): less noisy than
      # the final point with few evaluation episodes.
      means = [float(np.mean([p['normalised_return'] for p in x['curve']]))
               for x in runs if x.get('curve')]
      rows.append({'task': task, 'method': method, 'seeds': len(vals),
                   'normalised_return': float(np.mean(vals)),
                   'std': float(np.std(vals)), 'per_seed': vals,
                   'curve_mean': float(np.mean(means)) if means else None,
                   'demo_return': r['demo_return']})
  lines = ['| task | method | seeds | final normalised return (mean ± std '
           'over seeds) | per seed | mean over the run\'s evaluations |',
           '|---|---|---|---|---|---|']
  for row in rows:
    cm = row['curve_mean']
    lines.append(f"| {row['task']} | {row['method']} | {row['seeds']} | "
                 f"{row['normalised_return']:.3f} ± {row['std']:.3f} | "
                 + ', '.join(f'{v:.3f}' for v in row['per_seed']) +
                 f" | {'—' if cm is None else f'{cm:.3f}'} |")
  return rows, '\n'.join(lines)


def plot_curves(task: str, r: dict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6.5, 4))
  for method, runs in r['methods'].items():
    curves = [x.get('curve') for x in runs if x.get('curve')]
    if not curves or 'env_steps' not in curves[0][0]:
      continue
    n = min(len(c) for c in curves)
    xs = [p['env_steps'] for p in curves[0][:n]]
    ys = np.array([[p['normalised_return'] for p in c[:n]] for c in curves])
    ax.plot(xs, ys.mean(0), label=method)
    ax.fill_between(xs, ys.min(0), ys.max(0), alpha=0.2)
  for method in ('bco', 'aime', 'bc_true_actions'):
    if method in r['methods']:
      vals = [_final(method if method != 'bc_true_actions' else 'x', x)
              for x in r['methods'][method]]
      ax.axhline(np.mean(vals), ls='--', lw=1, label=f'{method} (offline)',
                 color={'bco': 'grey', 'aime': 'black'}.get(method, 'green'))
  ax.set_xlabel('online environment steps')
  ax.set_ylabel('return / demonstrations\' return')
  ax.set_title(f'{task}: imitation from observation (mean, min-max of seeds)')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  unknown = set(_METHODS.value) - set(METHODS)
  if unknown:
    raise app.UsageError(f'--methods: unknown {sorted(unknown)}; valid: '
                         f'{sorted(METHODS)}')
  os.makedirs(_WORKDIR.value, exist_ok=True)
  seeds = [int(s) for s in _SEEDS.value]
  all_results = {}
  for task in _TASKS.value:
    all_results[task] = run_task(task, seeds, _METHODS.value, _WORKDIR.value,
                                 _DEBUG.value)
    plot_curves(task, all_results[task],
                os.path.join(_WORKDIR.value, f'{task}_curves.png'))
  rows, table = summarise(all_results)
  print(table)
  with open(os.path.join(_WORKDIR.value, 'summary.json'), 'w') as f:
    json.dump(rows, f, indent=1)
  with open(os.path.join(_WORKDIR.value, 'summary.md'), 'w') as f:
    f.write(table + '\n')


if __name__ == '__main__':
  app.run(main)
