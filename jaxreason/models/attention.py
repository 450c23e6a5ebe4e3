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
