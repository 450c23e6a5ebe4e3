"""Helpers of the tests that run experiments in a subprocess (kill, resume).

Importable from any test folder: pytest puts tests/ (where the root
conftest.py is) on sys.path.
"""

import json
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def subprocess_env(**extra: str) -> dict[str, str]:
  """The environment for an experiment run on one CPU device."""
  env = dict(os.environ)
  env['XLA_FLAGS'] = '--xla_force_host_platform_device_count=1'
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = str(REPO) + os.pathsep + env.get('PYTHONPATH', '')
  env.update(extra)
  return env


def metrics_rows(workdir) -> list[dict]:
  """The rows of workdir/metrics.jsonl written so far ([] before the first)."""
  path = pathlib.Path(workdir) / 'metrics.jsonl'
  if not path.exists():
    return []
  rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
  # Every row the metric writer leaves carries its step.
  assert all('step' in r for r in rows), f'{path}: a row without a step'
  return rows
