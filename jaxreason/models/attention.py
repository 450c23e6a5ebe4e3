"""Attention over a KV cache (the model's cache mode) and its plain reference.

* `cached_attention(q, k_cache, v_cache, q_positions, kv_lengths)`: T new
  queries per row against a left-aligned cache. A `lax.fori_loop` over key
  blocks with online-softmax (flash) accumulation in float32; its trip count
  is ceil(max(kv_lengths) / block_size), so blocks past every row's length are
  never read: a short answer in a cache sized for 32k tokens costs what its
  tokens cost. The model's default in cache mode (prefill, continuation,
  decoding); `jaxreason.sampling.attention` can swap in the Pallas kernel.
* `decode_attention_reference(q, k, v, lengths)`: the T=1 case written as
  plainly as possible (one softmax over the whole cache). It is the contract
  that the Pallas kernel `jaxreason.sampling.kernels.decode_attention` is
  tested against.

Masking: key j is visible to query (b, t) iff j <= q_positions[b, t] and
j < kv_lengths[b] (causal by cache position, which is also the RoPE position,
since prompts are left-aligned). A query with no visible key gets zeros;
cache entries at index >= kv_lengths[b] never reach the output, even if NaN.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
# fn(q [B,T,H,D], k_all [L,B,S,K,D], v_all, q_positions [B,T], kv_lengths [B],
#    layer: int) -> [B,T,H,D]: what the model calls once per layer in cache mode.
AttentionFn = Callable[[Array, Array, Array, Array, Array, int], Array]


def cached_attention(q: Array, k_cache: Array, v_cache: Array,
                     q_positions: Array, kv_lengths: Array, *,
                     block_size: int = 256, layer: int | None = None) -> Array:
  """Grouped-query attention of new queries over a KV cache, block by block.

  Args:
    q: [B, T, H, D] queries (already rotated).
    k_cache: [B, S, K, D] keys; or [L, B, S, K, D] (all layers) with `layer`
      selecting one. Reading blocks straight out of the stacked cache avoids
      materializing the layer's [B, S, K, D] slice (XLA copies a slice that
      feeds a loop), which would cost the cache's size on every step.
    v_cache: like k_cache.
    q_positions: [B, T] int32 cache position of each query.
    kv_lengths: [B] int32 number of valid keys per row.
    block_size: keys per block; S must be a multiple of min(block_size, S).
    layer: the layer index (a Python int) if the cache is stacked.

  Returns:
    [B, T, H, D] in q.dtype; scores, softmax and accumulation are float32.
  """
  b, t, h, d = q.shape
  if layer is None:
    k_cache, v_cache = k_cache[None], v_cache[None]
    layer = 0
  _, cb, s, kv, cd = k_cache.shape
  assert (cb, cd) == (b, d) and h % kv == 0, (
      f'q {q.shape} does not match cache {k_cache.shape}')
  assert v_cache.shape == k_cache.shape, (v_cache.shape, k_cache.shape)
  assert q_positions.shape == (b, t), (q_positions.shape, (b, t))
  assert kv_lengths.shape == (b,), (kv_lengths.shape, (b,))
  bs = min(block_size, s)
  assert s % bs == 0, f'cache size {s} is not a multiple of block_size {bs}'
  g = h // kv
  qg = q.reshape(b, t, kv, g, d)
  scale = 1.0 / math.sqrt(d)
  num_blocks = (jnp.max(kv_lengths) + bs - 1) // bs  # Traced trip count.

  def body(j, carry):
    m, l, acc = carry  # [B, K, G, T], [B, K, G, T], [B, K, G, T, D] float32.
    start = j * bs
    k_blk = jax.lax.dynamic_slice(k_cache, (layer, 0, start, 0, 0),
                                  (1, b, bs, kv, d))[0]  # [B, bs, K, D]
    v_blk = jax.lax.dynamic_slice(v_cache, (layer, 0, start, 0, 0),
                                  (1, b, bs, kv, d))[0]
    scores = jnp.einsum('btkgd,bskd->bkgts', qg, k_blk,
                        preferred_element_type=jnp.float32) * scale
    key = start + jnp.arange(bs)  # [bs]
    filled = key[None, :] < kv_lengths[:, None]  # [B, bs]
    visible = (key[None, None, :] <= q_positions[:, :, None]) & filled[:, None]
    scores = jnp.where(visible[:, None, None], scores, -jnp.inf)
    # Unfilled entries may hold anything (even NaN): 0 * NaN would leak.
    v_blk = jnp.where(filled[:, :, None, None], v_blk, 0)
    m_new = jnp.maximum(m, scores.max(-1))
    m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)  # No key seen yet.
    p = jnp.exp(scores - m_safe[..., None])  # [B, K, G, T, bs]
    alpha = jnp.exp(m - m_safe)
    l = alpha * l + p.sum(-1)
    pv = jnp.einsum('bkgts,bskd->bkgtd', p.astype(v_blk.dtype), v_blk,
                    preferred_element_type=jnp.float32)
    return m_new, l, alpha[..., None] * acc + pv

  init = (jnp.full((b, kv, g, t), -jnp.inf, jnp.float32),
          jnp.zeros((b, kv, g, t), jnp.float32),
          jnp.zeros((b, kv, g, t, d), jnp.float32))
  _, l, acc = jax.lax.fori_loop(0, num_blocks, body, init)
  out = jnp.where(l[..., None] > 0, acc / jnp.maximum(l, 1e-30)[..., None], 0)
  out = jnp.transpose(out, (0, 3, 1, 2, 4))  # [B, T, K, G, D]
  return out.reshape(b, t, h, d).astype(q.dtype)


def decode_attention_reference(q: Array, k: Array, v: Array,
                               lengths: Array) -> Array:
  """One new query per row against its cache: the Pallas kernel's contract.

  Args:
    q: [B, H, D] queries (already rotated).
    k: [B, S, K, D] cached keys; H is a multiple of K (grouped-query).
    v: [B, S, K, D] cached values.
    lengths: [B] int32; keys 0..lengths[b]-1 are attended (the query's own key
      is already in the cache).

  Returns:
    [B, H, D] in q.dtype. q is cast to k.dtype (as the kernel does); scores
    and softmax are float32 and the dots use HIGHEST precision (an exact
    reference on every backend); probabilities are cast to v.dtype before
    the weighted sum (as the training path and the kernel do).
    Entries at index >= lengths[b] are never used, even if they hold NaN. A
    row with length 0 gets zeros.
  """
  b, h, d = q.shape
  _, s, kv, _ = k.shape
  assert k.shape == v.shape == (b, s, kv, d), (q.shape, k.shape, v.shape)
  assert lengths.shape == (b,), lengths.shape
  qg = q.reshape(b, kv, h // kv, d).astype(k.dtype)
  hi = jax.lax.Precision.HIGHEST  # Exact f32 dots on GPU (TF32) and TPU too.
  scores = jnp.einsum('bkgd,bskd->bkgs', qg, k, precision=hi,
                      preferred_element_type=jnp.float32) / math.sqrt(d)
  visible = (jnp.arange(s)[None, :] < lengths[:, None])[:, None, None]
  scores = jnp.where(visible, scores, -jnp.inf)
  probs = jax.nn.softmax(scores, axis=-1)
  probs = jnp.where(visible, probs, 0.0).astype(v.dtype)  # NaN rows -> 0.
  v = jnp.where(visible[:, 0, 0, :, None, None], v, 0)  # Even NaN is unused.
  out = jnp.einsum('bkgs,bskd->bkgd', probs, v, precision=hi,
                   preferred_element_type=jnp.float32)
  return out.reshape(b, h, d).astype(q.dtype)


def default_attention_fn(q: Array, k_all: Array, v_all: Array,
                         q_positions: Array, kv_lengths: Array,
                         layer: int) -> Array:
  """`cached_attention` with the default block size: an `AttentionFn`."""
  return cached_attention(q, k_all, v_all, q_positions, kv_lengths,
                          layer=layer)


# Training mode (no cache): the Transformer's attention ---------------------


def _group_queries(x: Array, num_kv_heads: int) -> Array:
  """[B, T, H, D] -> [B, T, K, G, D]: query head h = k * G + g reads kv head k."""
  b, t, h, d = x.shape
  return x.reshape(b, t, num_kv_heads, h // num_kv_heads, d)


def _attention_probs(q: Array, k: Array, mask: Array) -> Array:
  """Softmax probabilities [B, K, T, G, S] (float32) of grouped q, k.

  Scores as [B, K, T, G, S]: dot_general's own output order (batch dims, then
  q's free dims in q's order, then k's), so XLA inserts no transpose after the
  dot. 'bkgts' cost one per dot with G > 1 (GQA): XLA:CPU HLO fwd+bwd 11 -> 8
  transposes. With G = 1 both orders are the same layout.
  """
  scores = jnp.einsum('btkgd,bskd->bktgs', q, k,
                      preferred_element_type=jnp.float32)
  scores = scores / math.sqrt(q.shape[-1])
  scores = jnp.where(mask[:, :, :, None], scores, jnp.finfo(jnp.float32).min)
  return jax.nn.softmax(scores, axis=-1)


@jax.custom_vjp
def dot_product_attention(q: Array, k: Array, v: Array, mask: Array) -> Array:
  """Grouped-query attention.

  q: [B, T, H, D], k/v: [B, S, K, D], mask: [B, 1, T, S] -> [B, T, H, D].
  Scores and softmax are computed in float32.

  The backward pass is FlashAttention's (Dao 2023, alg. 2) on the saved
  probabilities P: dS = P * (dP - rowsum(dO * O)), the row term a [B, T, H]
  reduction over head_dim instead of autodiff's rowsum(dP * P) over the
  keys, which XLA:CPU fuses into the dP matmul and runs far below the matmul
  rate (bench-40m fwd+bwd 4.4 -> 4.0 s). Gradients equal autodiff's
  (tests/models/test_attention.py).
  """
  return _attention_fwd(q, k, v, mask)[0]


def _attention_fwd(q, k, v, mask):
  probs = _attention_probs(_group_queries(q, k.shape[2]), k, mask)
  probs = probs.astype(v.dtype)
  out = jnp.einsum('bktgs,bskd->btkgd', probs, v).reshape(q.shape)
  return out, (q, k, v, out, probs)


def _attention_bwd(residuals, d_out):
  q, k, v, out, probs = residuals
  num_kv = k.shape[2]
  qg, dog = _group_queries(q, num_kv), _group_queries(d_out, num_kv)
  og = _group_queries(out, num_kv)
  f32 = jnp.float32
  row = jnp.einsum('btkgd,btkgd->bktg', dog.astype(f32), og.astype(f32))
  dv = jnp.einsum('bktgs,btkgd->bskd', probs, dog)
  dp = jnp.einsum('btkgd,bskd->bktgs', dog, v, preferred_element_type=f32)
  ds = probs.astype(f32) * (dp - row[..., None]) / math.sqrt(q.shape[-1])
  ds = ds.astype(q.dtype)
  dq = jnp.einsum('bktgs,bskd->btkgd', ds, k).reshape(q.shape)
  dk = jnp.einsum('bktgs,btkgd->bskd', ds, qg)
  return dq, dk.astype(k.dtype), dv.astype(v.dtype), None


dot_product_attention.defvjp(_attention_fwd, _attention_bwd)


def causal_attention(q: Array, k: Array, v: Array, mask: Array,
                     block_size: int = 0) -> Array:
  """`dot_product_attention` for a causal mask, in query blocks.

  q: [B, T, H, D], k/v: [B, T, K, D], mask: [B, 1, T, T] causal by index
  (entry [t, s] False for s > t, as `attention_mask` builds it). Queries
  [i, j) can only see keys [0, j), so each query block attends to that key
  prefix alone: the same result with the masked upper triangle's blocks never
  computed. block_size 0 (or >= T): one dense call.
  """
  t = q.shape[1]
  if not block_size or block_size >= t:
    return dot_product_attention(q, k, v, mask)
  outs = []
  for start in range(0, t, block_size):
    end = min(start + block_size, t)
    outs.append(dot_product_attention(q[:, start:end], k[:, :end], v[:, :end],
                                      mask[:, :, start:end, :end]))
  return jnp.concatenate(outs, axis=1)
