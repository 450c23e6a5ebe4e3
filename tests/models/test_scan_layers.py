"""scan_layers: the stacked, scanned model equals the unrolled one (1e-5).

The unrolled model's random params are converted with `stack_layers`, so both
models compute the same function; logits, gradients (all remat policies),
cache-mode decoding (jnp and the Pallas kernel in interpret mode) and the
layout helpers are compared.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.models import layout
from jaxreason.models.transformer import (PRESETS, Transformer,
                                          abstract_params)
from jaxreason.sampling import DecodeState, Sampler
from jaxreason.sampling import attention as sampling_attention
from jaxreason.sampling.attention import AttentionSpec, make_attention_fn

# head_dim 16: the Pallas kernel's GPU path (interpreted here) needs >= 16.
CFG = PRESETS['tiny'].replace(num_layers=3, head_dim=16)
SCAN = CFG.replace(scan_layers=True)
TOL = dict(atol=1e-5, rtol=1e-5)


def _random_params(cfg, seed=0):
  """O(0.25) weights (far from uniform logits), numpy, unrolled layout."""
  rng = np.random.default_rng(seed)
  shapes = nn.unbox(abstract_params(cfg))
  return jax.tree_util.tree_map_with_path(
      lambda p, x: (rng.normal(0, 0.25, x.shape) + (p[-1].key == 'scale')
                    ).astype(np.float32), shapes)


def _batch(b=2, t=12, seed=1):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, CFG.vocab_size, (b, t)).astype(np.int32)
  seg = np.ones((b, t), np.int32)
  seg[:, t // 2:] = 2
  seg[1, -2:] = 0
  pos = np.concatenate([np.arange(t // 2)] * 2)[None].repeat(b, 0)
  return tokens, pos.astype(np.int32), seg


def _assert_close(a, b, **tol):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(
      np.asarray(x), np.asarray(y), **(tol or TOL)), a, b)


def test_stacked_params_have_a_layers_axis():
  abstract = abstract_params(SCAN)
  assert set(abstract) == {'embed_tokens', 'layers', 'norm', 'lm_head'}
  q = abstract['layers']['self_attn']['q_proj']['kernel']
  assert q.names == ('layers', 'embed', 'heads', 'head_dim')
  assert q.value.shape == (3, 32, 4, 16)
  # Same shapes as the unrolled model's, stacked (boxes and names included).
  stacked = layout.stack_layers(abstract_params(CFG))
  same = jax.tree.map(
      lambda a, b: (a.names == b.names and a.value.shape == b.value.shape
                    and a.value.dtype == b.value.dtype),
      abstract, stacked, is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert all(jax.tree.leaves(same))


def test_stack_unstack_round_trip():
  params = _random_params(CFG)
  stacked = layout.stack_layers(params)
  assert layout.is_stacked(stacked) and not layout.is_stacked(params)
  assert isinstance(stacked['layers']['mlp']['up_proj']['kernel'], np.ndarray)
  np.testing.assert_array_equal(
      stacked['layers']['mlp']['up_proj']['kernel'][2],
      params['layers_2']['mlp']['up_proj']['kernel'])
  _assert_close(layout.unstack_layers(stacked), params, atol=0, rtol=0)
  with pytest.raises(ValueError, match='not 0..'):
    layout.stack_layers({k: v for k, v in params.items() if k != 'layers_1'})


@pytest.mark.parametrize('remat', ['none', 'full', 'dots'])
def test_logits_and_gradients_match_unrolled(remat):
  params = _random_params(CFG)
  tokens, pos, seg = _batch()

  def loss(p, cfg):
    logits = Transformer(cfg).apply({'params': p}, tokens, pos, seg)
    return (jax.nn.log_softmax(logits)[..., 0] * (seg > 0)).mean(), logits

  grad = lambda cfg: jax.jit(jax.grad(loss, has_aux=True),
                             static_argnums=1)
  g_ref, logits_ref = grad(CFG)(params, CFG)
  g_scan, logits_scan = grad(SCAN.replace(remat=remat))(
      layout.stack_layers(params), SCAN.replace(remat=remat))
  np.testing.assert_allclose(logits_scan, logits_ref, **TOL)
  assert float(jnp.abs(g_ref['layers_1']['mlp']['up_proj']['kernel']).max()
               ) > 1e-4  # The comparison is not of zeros.
  _assert_close(layout.unstack_layers(g_scan), g_ref)


def test_scan_traces_one_layer():
  """The scanned model's jaxpr does not grow with depth (one layer body)."""
  tokens = jnp.zeros((1, 4), jnp.int32)
  size = lambda cfg: len(jax.make_jaxpr(
      lambda p: Transformer(cfg).apply({'params': p}, tokens))(
          nn.unbox(abstract_params(cfg))).jaxpr.eqns)
  deep = SCAN.replace(num_layers=12)
  assert size(deep) == size(SCAN)
  assert size(CFG.replace(num_layers=12)) > 2 * size(CFG)


@pytest.mark.parametrize('impl', ['jnp', 'pallas'])
def test_cache_mode_matches_unrolled(impl, monkeypatch):
  """Chunked prefill then single-token decode steps, logits and cache."""
  params = _random_params(CFG, seed=3)
  stacked = layout.stack_layers(params)
  layers_seen = []
  kernel = sampling_attention.decode_attention

  def spy(*args, layer, **kw):
    layers_seen.append(layer if isinstance(layer, int) else 'traced')
    return kernel(*args, layer=layer, **kw)

  monkeypatch.setattr(sampling_attention, 'decode_attention', spy)
  fn = make_attention_fn(AttentionSpec(impl, block_size=16, interpret=True))

  def steps(cfg, p):
    model = Transformer(cfg)
    apply = jax.jit(lambda p, c, t, n: model.apply(
        {'params': p}, t, cache=c, num_new=n, attention_fn=fn))
    cache = DecodeState.init(cfg, 2, 32).cache
    rng = np.random.default_rng(4)
    outs = []
    for n in ([8, 5], [3, 8]):  # Two prefill chunks of 8 (rows differ).
      tokens = rng.integers(0, cfg.vocab_size, (2, 8)).astype(np.int32)
      logits, cache = apply(p, cache, tokens, np.array(n, np.int32))
      outs.append(logits)
    for _ in range(3):  # Decode steps: T = 1 (the Pallas kernel's case).
      tokens = rng.integers(0, cfg.vocab_size, (2, 1)).astype(np.int32)
      logits, cache = apply(p, cache, tokens, np.ones(2, np.int32))
      outs.append(logits)
    return outs, cache

  ref, ref_cache = steps(CFG, params)
  out, cache = steps(SCAN, stacked)
  # The kernel ran for decode steps: per layer unrolled; in the scan with a
  # traced layer (flax traces the scan body more than once).
  if impl == 'pallas':
    assert layers_seen[:3] == [0, 1, 2] and set(layers_seen[3:]) == {'traced'}
  else:
    assert not layers_seen
  np.testing.assert_array_equal(cache.lengths, [14, 16])
  for a, b in zip(out, ref):
    np.testing.assert_allclose(a, b, **TOL)
  np.testing.assert_allclose(cache.k, ref_cache.k, **TOL)
  np.testing.assert_allclose(cache.v, ref_cache.v, **TOL)


def test_sampler_decodes_the_scanned_model_like_the_unrolled():
  """Sampler (prefill chunks + the jitted decode loop) on stacked params."""
  params = _random_params(CFG, seed=5)
  kw = dict(cache_size=32, block_size=16, prefill_chunk=8, eos_ids=())
  prompts = [[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [7, 8]]
  sample = lambda cfg, p, **s: Sampler(cfg, **kw).generate(
      p, prompts, max_new_tokens=6, n=2, rng=1, **s)
  ref = sample(CFG, params, temperature=0.0)
  out = sample(SCAN, layout.stack_layers(params), temperature=0.0)
  for r_row, o_row in zip(ref, out):
    for r, o in zip(r_row, o_row):
      assert len(o.tokens) == 6 and o.tokens == r.tokens
      np.testing.assert_allclose(o.logprobs, r.logprobs, atol=1e-5)
