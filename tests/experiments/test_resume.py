"""A run killed with SIGKILL and restarted continues exactly."""

import pathlib
import signal
import subprocess
import sys
import time

import pytest

from subprocess_testlib import metrics_rows, subprocess_env

REPO = pathlib.Path(__file__).resolve().parents[2]
ARGS = ['--config=' + str(REPO / 'configs/sft/synthetic.py') + ':debug',
        '--config.total_steps=14', '--config.checkpoint_every=3',
        '--config.eval_max_new_tokens=0', '--config.data.num_train=400']


def _cmd(workdir):
  return [sys.executable, str(REPO / 'experiments/sft.py'),
          f'--workdir={workdir}', *ARGS]


@pytest.mark.slow
def test_sigkill_mid_training_then_resume(tmp_path):
  ref_dir, run_dir = tmp_path / 'ref', tmp_path / 'run'
  subprocess.run(_cmd(ref_dir), env=subprocess_env(), check=True, capture_output=True)
  ref = {r['step']: r['loss'] for r in metrics_rows(ref_dir)}
  assert sorted(ref) == list(range(1, 15))

  proc = subprocess.Popen(_cmd(run_dir), env=subprocess_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while time.time() < deadline:
    if any(r['step'] >= 8 for r in metrics_rows(run_dir)):
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_rows = len(metrics_rows(run_dir))
  assert 8 <= killed_rows < 14, 'the run should be killed mid-training'

  out = subprocess.run(_cmd(run_dir), env=subprocess_env(), check=True,
                       capture_output=True, text=True)
  assert 'Resuming from step' in out.stderr
  resumed = metrics_rows(run_dir)[killed_rows:]
  first = resumed[0]['step']
  assert first <= 9, 'resumed from an earlier checkpoint than expected'
  assert len(resumed) >= 5
  for row in resumed[:5]:
    assert row['loss'] == pytest.approx(ref[row['step']], abs=1e-6), row
