"""The experiments launch as scripts and as modules, with the same result."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p.stem for p in (REPO / 'experiments').glob('*.py')
                     if p.stem not in ('__init__', 'launch'))
ARGS = ['--config=configs/sft/synthetic.py:debug', '--config.total_steps=2',
        '--config.eval_max_new_tokens=0']


def _env():
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=1')
  env.pop('PYTHONPATH', None)  # The launch itself must find the checkout.
  return env


def _losses(workdir):
  rows = [json.loads(l) for l in (workdir / 'metrics.jsonl').open()]
  return [(r['step'], r['loss']) for r in rows]


@pytest.mark.slow
def test_script_and_module_launch_agree(tmp_path):
  runs = {'script': [sys.executable, 'experiments/sft.py'],
          'module': [sys.executable, '-m', 'experiments.sft']}
  losses = {}
  for style, cmd in runs.items():
    workdir = tmp_path / style
    res = subprocess.run([*cmd, f'--workdir={workdir}', *ARGS], cwd=REPO,
                         env=_env(), capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, (style, res.stderr[-3000:])
    losses[style] = _losses(workdir)
  assert [s for s, _ in losses['script']] == [1, 2]
  assert losses['module'] == losses['script']


def test_every_experiment_imports_as_a_module():
  # Importing defines the flags and names the recipe; nothing runs.
  code = ('import importlib, sys\n'
          f'for name in {EXPERIMENTS!r}:\n'
          '  m = importlib.import_module("experiments." + name)\n'
          '  assert callable(m.report), name\n'
          '  assert m.launch.__name__ == "experiments.launch", name\n'
          'print("ok")\n')
  res = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=_env(),
                       capture_output=True, text=True, check=False)
  assert res.returncode == 0, res.stderr[-3000:]
  assert res.stdout.strip() == 'ok'
  assert set(EXPERIMENTS) >= {'sft', 'grpo', 'dpo', 'aime'}
