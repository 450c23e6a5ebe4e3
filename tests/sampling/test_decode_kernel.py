"""Pallas decode attention (interpret mode on CPU) vs references; lowering.

References: `jaxreason.models.attention.decode_attention_reference` (the
contract, shared with the sampler tests) and a per-head float64 NumPy loop.
"""

import importlib.util
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.sampling import kernels
from jaxreason.models.attention import decode_attention_reference
from jaxreason.sampling.kernels import decode_attention

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BACKENDS = ('gpu', 'tpu')  # Kernel variants; both run interpreted here.
# (B, S, K, G, D, block_size, lengths): length 1, block boundaries, length S,
# S not a multiple of the block (last block clamped), G not a power of two.
CONFIGS = {
    'boundaries': (3, 128, 2, 2, 16, 32, [1, 64, 128]),
    'clamped_tail': (4, 112, 2, 4, 32, 32, [33, 96, 112, 100]),
    'odd_group': (3, 256, 2, 3, 64, 128, [1, 128, 200]),
}


def _inputs(cfg, dtype=jnp.float32, seed=0):
  b, s, kh, g, d, _, lengths = cfg
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(b, kh * g, d))
  k = rng.normal(size=(b, s, kh, d))
  v = rng.normal(size=(b, s, kh, d))
  return (jnp.asarray(q, dtype), jnp.asarray(k, dtype), jnp.asarray(v, dtype),
          jnp.asarray(lengths, jnp.int32))


def _numpy_attention(q, k, v, lengths):
  """Per query head, from the formula, in float64 (independent of jnp)."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  b, h, d = q.shape
  group = h // k.shape[2]
  out = np.zeros((b, h, d))
  for i in range(b):
    n = int(lengths[i])
    for j in range(h):
      kv_head = j // group  # Query heads [kv_head * G, (kv_head + 1) * G).
      logits = k[i, :n, kv_head] @ q[i, j] / math.sqrt(d)
      p = np.exp(logits - logits.max())
      out[i, j] = (p / p.sum()) @ v[i, :n, kv_head]
  return out


def _poison_past_length(x, lengths, value):
  pos = jnp.arange(x.shape[1])[None, :, None, None]
  return jnp.where(pos >= lengths[:, None, None, None], value, x)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_matches_reference_f32(backend, name):
  cfg = CONFIGS[name]
  q, k, v, lengths = _inputs(cfg)
  out = decode_attention(q, k, v, lengths, block_size=cfg[5], interpret=True,
                         backend=backend)
  ref = decode_attention_reference(q, k, v, lengths)
  assert out.shape == q.shape and out.dtype == jnp.float32
  np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize('backend', BACKENDS)
def test_matches_reference_bf16(backend):
  cfg = CONFIGS['clamped_tail']
  q, k, v, lengths = _inputs(cfg, jnp.bfloat16, seed=1)
  out = decode_attention(q, k, v, lengths, block_size=cfg[5], interpret=True,
                         backend=backend)
  ref = decode_attention_reference(q, k, v, lengths)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32),
                             np.asarray(ref, np.float32), atol=2e-2, rtol=0)
  # Against the exact float64 answer on the same (bf16-rounded) inputs.
  exact = _numpy_attention(*(np.asarray(x, np.float32) for x in (q, k, v)),
                           lengths)
  np.testing.assert_allclose(np.asarray(out, np.float32), exact, atol=2e-2)
  # A float32 query against the bf16 cache: output in float32.
  out32 = decode_attention(q.astype(jnp.float32), k, v, lengths,
                           block_size=cfg[5], interpret=True, backend=backend)
  assert out32.dtype == jnp.float32
  np.testing.assert_allclose(out32, exact, atol=2e-2)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('value', [np.nan, 1e30])
def test_cache_past_length_has_no_effect(backend, value):
  cfg = CONFIGS['clamped_tail']  # Poison also inside partly valid blocks.
  q, k, v, lengths = _inputs(cfg, seed=2)
  clean = decode_attention_reference(q, k, v, lengths)
  k_bad = _poison_past_length(k, lengths, value)
  v_bad = _poison_past_length(v, lengths, value)
  out = decode_attention(q, k_bad, v_bad, lengths, block_size=cfg[5],
                         interpret=True, backend=backend)
  assert np.isfinite(np.asarray(out)).all()
  np.testing.assert_allclose(out, clean, atol=1e-5, rtol=0)
  # The reference itself is also immune.
  np.testing.assert_allclose(
      decode_attention_reference(q, k_bad, v_bad, lengths), clean, atol=1e-6)


@pytest.mark.parametrize('backend', BACKENDS)
def test_gqa_grouping_matches_numpy(backend):
  # K=4 KV heads with very different scales so a wrong head mapping shows.
  cfg = (2, 64, 4, 3, 16, 16, [17, 64])
  q, k, v, lengths = _inputs(cfg, seed=3)
  scale = jnp.arange(1, 5, dtype=jnp.float32)[None, None, :, None]
  k, v = k * scale, v * scale
  exact = _numpy_attention(q, k, v, lengths)
  out = decode_attention(q, k, v, lengths, block_size=cfg[5], interpret=True,
                         backend=backend)
  np.testing.assert_allclose(out, exact, atol=1e-5, rtol=0)
  np.testing.assert_allclose(decode_attention_reference(q, k, v, lengths),
                             exact, atol=1e-5, rtol=0)


@pytest.mark.parametrize('backend', BACKENDS)
def test_jit_lengths_do_not_recompile(backend):
  cfg = CONFIGS['boundaries']
  q, k, v, _ = _inputs(cfg, seed=4)
  traces = []

  @jax.jit
  def step(q, k, v, lengths):
    traces.append(1)
    return decode_attention(q, k, v, lengths, block_size=cfg[5],
                            interpret=True, backend=backend)

  for lens in ([1, 2, 3], [128, 64, 32], [31, 33, 127]):
    lengths = jnp.asarray(lens, jnp.int32)
    np.testing.assert_allclose(step(q, k, v, lengths),
                               decode_attention_reference(q, k, v, lengths),
                               atol=1e-5, rtol=0)
  assert len(traces) == 1
  assert step._cache_size() == 1  # pylint: disable=protected-access


def test_one_reference():
  assert kernels.decode_attention_reference is decode_attention_reference


@pytest.mark.parametrize('backend', BACKENDS)
def test_stacked_cache_layer(backend):
  """k [L, B, S, K, D] + layer equals the layer's slice (GPU: read in place)."""
  cfg = CONFIGS['clamped_tail']
  q, k, v, lengths = _inputs(cfg, seed=7)
  k_all = jnp.stack([k * 3.0, k, jnp.full_like(k, jnp.nan)])
  v_all = jnp.stack([-v, v, jnp.full_like(v, jnp.nan)])
  out = decode_attention(q, k_all, v_all, lengths, layer=1,
                         block_size=cfg[5], interpret=True, backend=backend)
  np.testing.assert_allclose(
      out, decode_attention_reference(q, k, v, lengths), atol=1e-5, rtol=0)
  np.testing.assert_allclose(out, _numpy_attention(q, k, v, lengths),
                             atol=1e-5, rtol=0)
  with pytest.raises(ValueError, match='layer=3'):
    decode_attention(q, k_all, v_all, lengths, layer=3, interpret=True,
                     backend=backend)


@pytest.mark.parametrize('backend', BACKENDS)
def test_traced_layer_inside_scan(backend):
  """A traced layer index (a scan_layers model's loop) reads that layer."""
  cfg = CONFIGS['clamped_tail']
  q, k, v, lengths = _inputs(cfg, seed=8)
  k_all = jnp.stack([k * 3.0, k, jnp.full_like(k, jnp.nan)])
  v_all = jnp.stack([-v, v, jnp.full_like(v, jnp.nan)])

  def body(_, layer):
    return None, decode_attention(q, k_all, v_all, lengths, layer=layer,
                                  block_size=cfg[5], interpret=True,
                                  backend=backend)

  _, outs = jax.lax.scan(body, None, jnp.arange(2, dtype=jnp.int32))
  np.testing.assert_allclose(outs[0], _numpy_attention(q, k * 3.0, -v,
                                                       lengths),
                             atol=1e-5, rtol=0)
  np.testing.assert_allclose(outs[1], _numpy_attention(q, k, v, lengths),
                             atol=1e-5, rtol=0)


def test_traced_layer_lowers_to_triton():
  """The traced-layer GPU kernel (layer as an operand) lowers for CUDA."""
  b, s, kh, g, d, layers = 8, 1024, 2, 7, 64, 3
  a = lambda *shape, t=jnp.bfloat16: jax.ShapeDtypeStruct(shape, t)
  fn = jax.jit(lambda q, k, v, l, i: decode_attention(q, k, v, l, layer=i,
                                                      backend='gpu'))
  lowered = fn.trace(a(b, kh * g, d), a(layers, b, s, kh, d),
                     a(layers, b, s, kh, d), a(b, t=jnp.int32),
                     a(t=jnp.int32)).lower(lowering_platforms=('cuda',))
  assert 'xla.gpu.triton' in lowered.as_text()


@pytest.mark.parametrize('num_splits', [1, 3])
def test_gpu_sequence_splits(num_splits):
  cfg = CONFIGS['clamped_tail']  # 4 blocks: 3 splits -> 2 of 2 blocks.
  q, k, v, lengths = _inputs(cfg, seed=6)
  out = decode_attention(q, k, v, lengths, block_size=cfg[5], interpret=True,
                         backend='gpu', num_splits=num_splits)
  np.testing.assert_allclose(out, decode_attention_reference(q, k, v, lengths),
                             atol=1e-5, rtol=0)


def test_block_size_clamped_to_cache():
  cfg = (2, 32, 1, 2, 16, 32, [5, 32])
  q, k, v, lengths = _inputs(cfg, seed=5)
  ref = decode_attention_reference(q, k, v, lengths)
  for backend in BACKENDS:
    out = decode_attention(q, k, v, lengths, block_size=256, interpret=True,
                           backend=backend)
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


def test_rejects_bad_configs():
  q, k, v, lengths = _inputs(CONFIGS['boundaries'])
  with pytest.raises(ValueError, match='power of two'):
    decode_attention(q, k, v, lengths, block_size=48, interpret=True,
                     backend='gpu')
  with pytest.raises(ValueError, match='multiples of 8'):
    decode_attention(q, k, v, lengths, block_size=20, interpret=True,
                     backend='tpu')
  with pytest.raises(ValueError, match='multiple of K'):
    decode_attention(q[:, :3], k, v, lengths, interpret=True)
  with pytest.raises(ValueError, match='backend'):
    decode_attention(q, k, v, lengths, interpret=True, backend='cpu')


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_lowers_to_triton(dtype):
  """The real (non-interpret) Triton lowering runs on a CPU host."""
  b, s, kh, g, d = 8, 8192, 2, 7, 64  # Qwen2.5-0.5B decode shape.
  a = lambda *shape, t=dtype: jax.ShapeDtypeStruct(shape, t)
  fn = jax.jit(lambda q, k, v, l: decode_attention(q, k, v, l, backend='gpu'))
  lowered = fn.trace(a(b, kh * g, d), a(b, s, kh, d), a(b, s, kh, d),
                     a(b, t=jnp.int32)).lower(lowering_platforms=('cuda',))
  assert 'xla.gpu.triton' in lowered.as_text()


_TPU_AOT = textwrap.dedent("""
    import os
    for key, val in (('JAX_PLATFORMS', 'cpu'), ('TPU_SKIP_MDS_QUERY', '1'),
                     ('TPU_WORKER_HOSTNAMES', 'localhost'),
                     ('TPU_ACCELERATOR_TYPE', 'v5litepod-4'),
                     ('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')):
      os.environ[key] = val
    import jax, jax.numpy as jnp
    from jax.experimental import topologies
    from jax.sharding import SingleDeviceSharding
    from jaxreason.sampling.kernels import decode_attention
    try:
      topo = topologies.get_topology_desc(platform='tpu',
                                          topology_name='v5e:2x2')
    except Exception as e:  # pylint: disable=broad-except
      print('NO_TOPOLOGY', e)
      raise SystemExit(0)
    sh = SingleDeviceSharding(topo.devices[0])
    fn = jax.jit(lambda q, k, v, l: decode_attention(q, k, v, l,
                                                     backend='tpu'))
    for dt in (jnp.float32, jnp.bfloat16):
      a = lambda *s, t=dt: jax.ShapeDtypeStruct(s, t, sharding=sh)
      lowered = fn.trace(a(8, 14, 64), a(8, 8192, 2, 64), a(8, 8192, 2, 64),
                         a(8, t=jnp.int32)).lower(lowering_platforms=('tpu',))
      assert 'tpu_custom_call' in lowered.as_text()
      lowered.compile()  # Runs the Mosaic compiler (layouts, DMAs).
      print('COMPILED', jnp.dtype(dt).name)
""")


@pytest.mark.slow
def test_compiles_for_tpu_with_mosaic():
  """AOT-compiles the TPU kernel for v5e through libtpu, without a TPU."""
  if importlib.util.find_spec('libtpu') is None:
    pytest.skip('libtpu not installed (pip install -e .[tpu])')
  env = dict(os.environ, PYTHONPATH=REPO)
  res = subprocess.run([sys.executable, '-c', _TPU_AOT], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=600, check=False)
  if 'NO_TOPOLOGY' in res.stdout:
    pytest.skip(f'libtpu topology unavailable: {res.stdout[-300:]}')
  assert res.returncode == 0, res.stderr[-3000:]
  assert res.stdout.count('COMPILED') == 2, res.stdout
