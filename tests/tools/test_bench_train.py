"""tools/bench_train.py end to end at a tiny shape: each side in its own process.

The torch child loads the checkpoint the parent wrote and the JAX child
re-initialises from the seed; equal first-step losses show both start from
the same parameters (the ratio is only meaningful then).
"""

import json
import subprocess
import sys

import pytest

from subprocess_testlib import REPO, subprocess_env


@pytest.mark.slow
def test_isolated_sides_start_from_the_same_parameters(tmp_path):
  out = tmp_path / 'bench.json'
  env = subprocess_env()
  env['XLA_FLAGS'] = ''  # The bench refuses faked devices.
  subprocess.run(
      [sys.executable, 'tools/bench_train.py', '--shapes=bench-tiny',
       '--steps=2', '--warmup=1', '--batch=2', '--seq_len=16',
       '--matmul_n=64', '--matmul_iters=1', '--rounds=2',
       '--attention_block_size=8', '--gemm_iters=1', f'--output={out}'],
      cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
  data = json.loads(out.read_text())
  assert data['settings']['isolate'] is True
  assert data['settings']['rounds'] == 2
  (res,) = data['results']
  jax_side, torch_side = res['jax'], res['torch_sdpa']
  for side in (jax_side, torch_side):
    # MFU > 0 only: the peak here is one 64^3 matmul on a loaded host, too
    # small to bound the tiny model's rate (it came out at 1.04 once).
    assert side['tokens_per_s'] > 0 and side['mfu'] > 0
    assert len(side['step_times_s']) == 2
    # Two rounds; the reported one is the faster.
    assert len(side['rounds_tokens_per_s']) == 2
    assert side['tokens_per_s'] == max(side['rounds_tokens_per_s'])
  assert res['config']['attention_block_size'] == 8
  # Warmup step 1 differs by float noise only; the timed steps follow the
  # same AdamW updates from the same start.
  assert res['loss_max_abs_diff_vs_torch_sdpa'] < 1e-3
  gemms = res['dense_gemms']  # The GEMMs-alone column.
  assert gemms['jax_s'] > 0 and gemms['torch_s'] > 0
  assert gemms['flops'] == 6 * res['flops_per_token']['n_matmul'] * 2 * 16
  assert res['ratio_jax_over_torch_sdpa'] == pytest.approx(
      jax_side['tokens_per_s'] / torch_side['tokens_per_s'])
