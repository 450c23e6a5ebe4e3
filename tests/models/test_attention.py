"""Cache attention against the training path's attention and NumPy."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.models.attention import dot_product_attention
from jaxreason.models import attention

# Jitted: eager loops would compile on every call.
cached_attention = jax.jit(attention.cached_attention,
                           static_argnames=('block_size', 'layer'))
decode_attention_reference = jax.jit(attention.decode_attention_reference)

B, S, H, K, D = 3, 48, 4, 2, 8
LENGTHS = np.array([5, 33, 17], np.int32)


def _qkv(t, seed=0):
  kq, kk, kv = jax.random.split(jax.random.key(seed), 3)
  return (jax.random.normal(kq, (B, t, H, D)),
          jax.random.normal(kk, (B, S, K, D)),
          jax.random.normal(kv, (B, S, K, D)))


@jax.jit
def _reference(q, k, v, q_positions, kv_lengths):
  """The training path's attention with the cache masks spelled out."""
  key = jnp.arange(S)
  mask = ((key[None, None, :] <= q_positions[:, :, None])
          & (key[None, None, :] < kv_lengths[:, None, None]))
  return dot_product_attention(q, k, v, mask[:, None])


def test_blocked_matches_dense_attention():
  t = 3
  q, k, v = _qkv(t)
  # The last 3 tokens of each row, as in a prefill chunk.
  q_positions = LENGTHS[:, None] - t + np.arange(t)[None]
  for block_size in (8, 64):  # 64 > S: one block of S.
    out = cached_attention(q, k, v, q_positions, LENGTHS,
                           block_size=block_size)
    np.testing.assert_allclose(out, _reference(q, k, v, q_positions, LENGTHS),
                               atol=1e-5, rtol=1e-5)


def test_blocks_past_every_length_are_never_read(monkeypatch):
  """Records the start of every key block the loop slices out of the cache."""
  starts = []
  real_slice = jax.lax.dynamic_slice

  def spy(operand, start_indices, slice_sizes):
    jax.debug.callback(lambda s: starts.append(int(s)), start_indices[2])
    return real_slice(operand, start_indices, slice_sizes)

  monkeypatch.setattr(jax.lax, 'dynamic_slice', spy)
  q, k, v = _qkv(1, seed=1)
  fn = jax.jit(lambda *a: attention.cached_attention(*a, block_size=8))
  for lengths, blocks in ((LENGTHS, 5), (np.array([1, 2, 8], np.int32), 1),
                          (np.array([1, 48, 2], np.int32), 6)):
    starts.clear()
    jax.block_until_ready(fn(q, k, v, lengths[:, None] - 1, lengths))
    # Two slices (k and v) per block: 0, 8, ... up to ceil(max / 8) blocks.
    assert sorted(starts) == sorted(2 * list(range(0, 8 * blocks, 8)))


def test_unfilled_entries_never_leak():
  q, k, v = _qkv(1, seed=1)
  q_positions = LENGTHS[:, None] - 1
  expected = cached_attention(q, k, v, q_positions, LENGTHS, block_size=8)
  # NaN past each row's length, also inside the blocks that are read.
  unfilled = jnp.arange(S)[None, :, None, None] >= LENGTHS[:, None, None,
                                                            None]
  k_bad, v_bad = (jnp.where(unfilled, jnp.nan, x) for x in (k, v))
  out = cached_attention(q, k_bad, v_bad, q_positions, LENGTHS, block_size=8)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))
  out = decode_attention_reference(q[:, 0], k_bad, v_bad, LENGTHS)
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected)[:, 0],
                             atol=1e-6)


def test_stacked_layers_read_in_place():
  q, k, v = _qkv(3, seed=2)
  q_positions = LENGTHS[:, None] - 3 + np.arange(3)[None]
  k_all = jnp.stack([k * 0.5, k, -k])
  v_all = jnp.stack([v, v * 2, v])
  out = cached_attention(q, k_all, v_all, q_positions, LENGTHS,
                         block_size=8, layer=1)
  expected = cached_attention(q, k, v * 2, q_positions, LENGTHS,
                              block_size=8)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))


def test_decode_reference_matches_numpy_and_blocked():
  q, k, v = _qkv(1, seed=3)
  lengths = np.array([5, 48, 0], np.int32)  # Full and empty rows too.
  out = np.asarray(decode_attention_reference(q[:, 0], k, v, lengths))
  qn, kn, vn = (np.asarray(x, np.float64) for x in (q[:, 0], k, v))
  for b in range(B):
    n = lengths[b]
    if n == 0:
      np.testing.assert_array_equal(out[b], 0)
      continue
    for h in range(H):
      kh = h // (H // K)
      s = kn[b, :n, kh] @ qn[b, h] / np.sqrt(D)
      p = np.exp(s - s.max())
      p /= p.sum()
      np.testing.assert_allclose(out[b, h], p @ vn[b, :n, kh], atol=1e-5)
  blocked = cached_attention(q, k, v, lengths[:, None] - 1, lengths,
                             block_size=16)
  np.testing.assert_allclose(np.asarray(blocked)[:, 0], out, atol=1e-6)


def test_bfloat16_cache():
  q, k, v = (x.astype(jnp.bfloat16) for x in _qkv(1, seed=4))
  q_positions = LENGTHS[:, None] - 1
  out = cached_attention(q, k, v, q_positions, LENGTHS, block_size=16)
  assert out.dtype == jnp.bfloat16
  ref = decode_attention_reference(q[:, 0], k, v, LENGTHS)
  np.testing.assert_allclose(np.asarray(out[:, 0], np.float32),
                             np.asarray(ref, np.float32), atol=2e-2)


def _plain_attention(q, k, v, mask):
  """Textbook GQA: kv heads repeated, softmax(q k^T / sqrt(d)) v, autodiff'd."""
  g = q.shape[2] // k.shape[2]
  k, v = jnp.repeat(k, g, axis=2), jnp.repeat(v, g, axis=2)
  s = jnp.einsum('bthd,bshd->bhts', q, k) / np.sqrt(q.shape[-1])
  s = jnp.where(mask, s, -1e30)
  return jnp.einsum('bhts,bshd->bthd', jax.nn.softmax(s, -1), v)


def _packed_self_attention_inputs(seed, t=12):
  """q, k, v, an output cotangent and the mask of two packed segments + pad."""
  from jaxreason.models.transformer import attention_mask  # pylint: disable=g-import-not-at-top
  kq, kk, kv, kc = jax.random.split(jax.random.key(seed), 4)
  seg = jnp.array([[1] * 12, [1] * 5 + [2] * 7, [1] * 8 + [0] * 4])[:, :t]
  return (jax.random.normal(kq, (B, t, H, D)),
          jax.random.normal(kk, (B, t, K, D)),
          jax.random.normal(kv, (B, t, K, D)),
          jax.random.normal(kc, (B, t, H, D)), attention_mask(seg))


def test_attention_gradients_match_autodiff_of_plain_attention():
  """The hand-written (FlashAttention-style) backward against autodiff.

  GQA (4 query heads on 2 kv heads), two packed segments and padding.
  """
  q, k, v, cot, mask = _packed_self_attention_inputs(seed=3)

  def grads(fn):
    out, vjp = jax.vjp(lambda *a: fn(*a, mask), q, k, v)
    return (out,) + vjp(cot)

  got = jax.jit(lambda: grads(dot_product_attention))()
  want = jax.jit(lambda: grads(_plain_attention))()
  for name, a, b in zip(('out', 'dq', 'dk', 'dv'), got, want):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5, err_msg=name)
  # bfloat16 inputs: same gradients to bfloat16 precision, same dtypes.
  bf = lambda x: x.astype(jnp.bfloat16)
  q, k, v, cot = bf(q), bf(k), bf(v), bf(cot)
  got16 = jax.jit(lambda: grads(dot_product_attention))()
  assert all(x.dtype == jnp.bfloat16 for x in got16)
  for name, a, b in zip(('out', 'dq', 'dk', 'dv'), got16, want):
    np.testing.assert_allclose(np.asarray(a, np.float32), b, atol=0.1,
                               rtol=0.05, err_msg=name)


def test_causal_query_blocks_equal_one_dense_block():
  """causal_attention in blocks (uneven: 5, 5, 2) = the dense call, with grads.

  And a whole model with attention_block_size set: same loss and gradients.
  """
  from jaxreason.models import transformer as tr  # pylint: disable=g-import-not-at-top
  q, k, v, cot, mask = _packed_self_attention_inputs(seed=4)

  def grads(block):
    fn = lambda *a: tr.causal_attention(*a, mask, block)
    out, vjp = jax.vjp(fn, q, k, v)
    return (out,) + vjp(cot)

  want = jax.jit(lambda: grads(0))()
  for block in (5, 12):
    got = jax.jit(lambda b=block: grads(b))()
    for name, a, b in zip(('out', 'dq', 'dk', 'dv'), got, want):
      np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5,
                                 err_msg=f'{name} block {block}')

  cfg = tr.TransformerConfig.from_preset('tiny')
  params = tr.init_params(cfg, jax.random.key(5))
  tokens = jax.random.randint(jax.random.key(6), (2, 16), 0, cfg.vocab_size)

  def loss(c):
    fn = lambda p: jnp.mean(tr.Transformer(c).apply({'params': p}, tokens)
                            ** 2)
    return jax.jit(jax.value_and_grad(fn))(params)

  (l0, g0), (l1, g1) = loss(cfg), loss(cfg.replace(attention_block_size=6))
  np.testing.assert_allclose(l1, l0, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), g1,
               g0)
  with np.testing.assert_raises(ValueError):
    cfg.replace(attention_block_size=-1)
