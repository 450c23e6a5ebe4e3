#!/usr/bin/env bash
# Checks the compiled Pallas decode-attention kernel on a GPU; prints JSON.
#
#   bash tools/check_kernels_gpu.sh            # from the repo root
#   PYTHON=python3 BLOCKS=128,256 SPLITS=0,1 REPS=50 \
#       bash tools/check_kernels_gpu.sh  # SPLITS: 0 = the kernel's default
#
# Needs jax[cuda] (jaxreason itself need not be installed: the repo root goes
# on PYTHONPATH). On the Qwen2.5-0.5B decode shape (B=8, S=8192, H=14, K=2,
# D=64), f32 and bf16, it runs `decode_attention(..., interpret=False,
# backend='gpu')` (Triton) and checks it against `decode_attention_reference`
# (max abs error; NaN in the cache past each row's length must not change the
# output), then times both: the kernel at mixed, full (S) and short (512)
# lengths (its cost should follow the lengths) and the reference (always S).
# Then the library's train step at the bench-124m shape (tools/benchlib/
# train_mfu.py): tokens/s and MFU in float32 and bfloat16 compute (TRAIN=0
# skips it).
# Exit status: 0 all checks pass, 1 a check failed, 2 no GPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="${PWD}${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON:-python3}" - <<'EOF'
import json
import os
import sys
import time

import jax

try:
  gpus = jax.devices('gpu')
except RuntimeError as e:
  gpus = []
  why = str(e).splitlines()[0] if str(e) else 'no gpu backend'
if not gpus:
  print(f'check_kernels_gpu: no GPU visible to jax ({why}); install '
        'jax[cuda] and run on a GPU machine (JAX_PLATFORMS must not be cpu).',
        file=sys.stderr)
  print(json.dumps({'status': 'no_gpu'}))
  sys.exit(2)

import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from jaxreason.sampling import kernels  # pylint: disable=g-import-not-at-top

B, S, H, K, D = 8, 8192, 14, 2, 64
BLOCKS = [int(x) for x in os.environ.get('BLOCKS', '128,256').split(',')]
SPLITS = [int(x) for x in os.environ.get('SPLITS', '0,1').split(',')]
REPS = int(os.environ.get('REPS', '50'))
TOL = {'float32': 1e-4, 'bfloat16': 2e-2}
MIXED = [1, 255, 256, 1000, 4096, 5000, 8191, 8192]


def bench(fn, *args):
  """Median of 3 throughput runs (REPS async calls, one sync), in us."""
  jax.block_until_ready(fn(*args))
  runs = []
  for _ in range(3):
    t = time.perf_counter()
    for _ in range(REPS):
      out = fn(*args)
    jax.block_until_ready(out)
    runs.append((time.perf_counter() - t) / REPS * 1e6)
  return round(float(np.median(runs)), 1)


def poison(x, lengths):
  pos = jnp.arange(S)[None, :, None, None]
  return jnp.where(pos >= lengths[:, None, None, None], jnp.nan, x)


rng = np.random.default_rng(0)
results, ok = [], True
ref_fn = jax.jit(kernels.decode_attention_reference)
for dtype in (jnp.float32, jnp.bfloat16):
  name = jnp.dtype(dtype).name
  q = jnp.asarray(rng.normal(size=(B, H, D)), dtype)
  k = jnp.asarray(rng.normal(size=(B, S, K, D)), dtype)
  v = jnp.asarray(rng.normal(size=(B, S, K, D)), dtype)
  lens = {'mixed': jnp.asarray(MIXED, jnp.int32),
          'full': jnp.full((B,), S, jnp.int32),
          'short512': jnp.full((B,), 512, jnp.int32)}
  ref = ref_fn(q, k, v, lens['mixed'])
  ref_us = bench(ref_fn, q, k, v, lens['full'])
  for bs, ns in [(bs, ns) for bs in BLOCKS for ns in SPLITS]:
    fn = jax.jit(lambda q, k, v, l, bs=bs, ns=ns: kernels.decode_attention(
        q, k, v, l, block_size=bs, interpret=False, backend='gpu',
        num_splits=ns or None))
    row = {'dtype': name, 'block_size': bs, 'num_splits': ns or 'default',
           'shape': f'B={B} S={S} H={H} K={K} D={D}'}
    try:
      t = time.perf_counter()
      out = jax.block_until_ready(fn(q, k, v, lens['mixed']))
      row['compile_s'] = round(time.perf_counter() - t, 2)
      err = float(jnp.max(jnp.abs(out.astype(jnp.float32) -
                                  ref.astype(jnp.float32))))
      bad = fn(q, poison(k, lens['mixed']), poison(v, lens['mixed']),
               lens['mixed'])
      nan_err = float(jnp.max(jnp.abs(bad.astype(jnp.float32) -
                                      out.astype(jnp.float32))))
      row.update(max_abs_err=err, tol=TOL[name],
                 poisoned_cache_max_diff=nan_err,
                 ok=bool(err <= TOL[name] and nan_err == 0.0))
      for key, lengths in lens.items():
        us = bench(fn, q, k, v, lengths)
        read = int(sum(-(-int(n) // bs) * bs for n in lengths))  # Keys read.
        gbps = 2 * read * K * D * jnp.dtype(dtype).itemsize / us / 1e3
        row[f'kernel_us_{key}'] = us
        row[f'kernel_gbps_{key}'] = round(gbps, 1)
      row['reference_us_full'] = ref_us
      row['speedup_full_vs_reference'] = round(ref_us / row['kernel_us_full'],
                                               2)
    except Exception as e:  # pylint: disable=broad-except
      row.update(ok=False, error=f'{type(e).__name__}: {str(e)[:2000]}')
    ok &= row['ok']
    results.append(row)
    print(json.dumps(row), file=sys.stderr)  # Progress.

# The library's train step at the bench-124m shape: tokens/s and MFU
# against the best matmul rate jnp reaches here, float32 and bfloat16
# compute (float32 params). TRAIN=0 skips it.
train = []
if os.environ.get('TRAIN', '1') != '0':
  sys.path.insert(0, 'tools')
  from benchlib import train_mfu  # pylint: disable=g-import-not-at-top
  from jaxreason.models.transformer import TransformerConfig  # pylint: disable=g-import-not-at-top
  for dtype in ('float32', 'bfloat16'):
    cfg = TransformerConfig.from_preset('bench-124m').replace(dtype=dtype)
    try:
      row = train_mfu.train_step_mfu(
          cfg, batch=int(os.environ.get('TRAIN_BATCH', '16')),
          seq_len=1024, steps=10, warmup=2, matmul_n=8192)
      row['ok'] = bool(np.isfinite(row['losses']).all())
    except Exception as e:  # pylint: disable=broad-except
      row = {'dtype': dtype, 'ok': False,
             'error': f'{type(e).__name__}: {str(e)[:2000]}'}
    ok &= row['ok']
    train.append(row)
    print(json.dumps(row), file=sys.stderr)  # Progress.

print(json.dumps({'status': 'ok' if ok else 'fail', 'device':
                  gpus[0].device_kind, 'jax': jax.__version__,
                  'results': results, 'train': train}, indent=1))
sys.exit(0 if ok else 1)
EOF
