"""Every imitation stage, killed with SIGKILL and run again, continues exactly.

As tests/experiments/test_resume.py for SFT: an uninterrupted run, a run
killed mid-training and restarted in the same workdir; the restarted run's
metric rows (and evaluation curve) must equal the uninterrupted run's.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from subprocess_testlib import metrics_rows, subprocess_env

REPO = pathlib.Path(__file__).resolve().parents[2]
TIMING = ('steps_per_sec', 'tokens_per_sec', 'eta_sec')

# stage: (config file, overrides, total steps, kill once this step is logged
# and a checkpoint is committed)
STAGES = {
    # 80 agent steps (4 episodes) a chunk: a run long enough to be killed
    # after its first committed checkpoint and before its end.
    'expert': ('expert.py', ['--config.sac_steps=800',
                             '--config.total_steps=10'], 10, 2),
    'bco': ('bco.py', ['--config.bco.idm_steps=150',
                       '--config.bco.bc_steps=150',
                       '--config.checkpoint_every=25'], 300, 60),
    'pretrain': ('pretrain.py', ['--config.total_steps=40',
                                 '--config.checkpoint_every=5'], 40, 10),
    'aime': ('aime.py', ['--config.total_steps=40', '--config.eval_every=10',
                         '--config.checkpoint_every=5'], 40, 10),
    'aime_v2': ('aime_v2.py', ['--config.total_steps=6',
                               '--config.eval_every=2'], 6, 2),
}


def _cmd(stage, workdir):
  file, overrides, _, _ = STAGES[stage]
  return [sys.executable, str(REPO / 'experiments/aime.py'),
          f'--config={REPO / "configs/aime" / file}:walker-stand,debug',
          f'--workdir={workdir}', *overrides]


def _committed(workdir) -> bool:
  """Whether a checkpoint is complete (orbax renames the folder of a step
  from a temporary name to the bare number when it is)."""
  ckpt = pathlib.Path(workdir) / 'checkpoints'
  return ckpt.exists() and any(p.name.isdigit() for p in ckpt.iterdir())


def _values(row):
  return {k: v for k, v in row.items() if k not in TIMING}


@pytest.mark.slow
@pytest.mark.parametrize('stage', list(STAGES))
def test_stage_resumes_exactly_after_sigkill(stage, tmp_path):
  _, _, total, kill_at = STAGES[stage]
  ref_dir, run_dir = tmp_path / 'ref', tmp_path / 'run'
  subprocess.run(_cmd(stage, ref_dir), env=subprocess_env(MUJOCO_GL=os.environ.get('MUJOCO_GL', 'disable')), check=True,
                 capture_output=True)
  ref = {r['step']: _values(r) for r in metrics_rows(ref_dir)}
  assert sorted(ref) == list(range(1, total + 1))

  proc = subprocess.Popen(_cmd(stage, run_dir), env=subprocess_env(MUJOCO_GL=os.environ.get('MUJOCO_GL', 'disable')),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while time.time() < deadline:
    if any(r['step'] >= kill_at for r in metrics_rows(run_dir)) and (
        _committed(run_dir)):
      break
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed = metrics_rows(run_dir)
  assert kill_at <= len(killed) < total, 'the run should be killed mid-run'

  out = subprocess.run(_cmd(stage, run_dir), env=subprocess_env(MUJOCO_GL=os.environ.get('MUJOCO_GL', 'disable')), check=True,
                       capture_output=True, text=True)
  assert 'Resuming from step' in out.stderr
  resumed = metrics_rows(run_dir)[len(killed):]
  assert resumed[0]['step'] <= len(killed) + 1
  assert resumed[-1]['step'] == total
  for row in resumed:
    want = ref[row['step']]
    assert set(_values(row)) == set(want), row['step']
    for k, v in _values(row).items():
      assert v == pytest.approx(want[k], rel=1e-5, abs=1e-6), (row['step'], k)
  got = json.loads((run_dir / 'result.json').read_text())
  want = json.loads((ref_dir / 'result.json').read_text())
  for k in ('eval', 'curve', 'bco', 'bc_true_actions', 'demo_return'):
    assert got.get(k) == pytest.approx(want.get(k)) if not isinstance(
        want.get(k), (dict, list)) else got.get(k) == want.get(k), k
