"""The KV cache and the decoding state: pytrees passed to jitted functions.

Layout: prompts are left-aligned. Row b holds its tokens at cache indices
0..lengths[b]-1 and the RoPE position of a token is its cache index, so
continuing a row (a tool's output, a hint, the next decode step) is appending
at lengths[b]. Layers are stacked on the leading axis, so selecting or
duplicating rows (`take`) is one gather per array.
"""

from __future__ import annotations

from typing import Sequence

import flax.struct
import jax
import jax.numpy as jnp

from jaxreason.models.transformer import TransformerConfig

Array = jax.Array


@flax.struct.dataclass
class KVCache:
  """Keys and values of every layer, in the model's computation dtype."""

  k: Array  # [L, B, S, K, D]
  v: Array  # [L, B, S, K, D]
  lengths: Array  # [B] int32: valid entries per row.

  @classmethod
  def init(cls, config: TransformerConfig, batch_size: int,
           size: int) -> 'KVCache':
    """An empty cache of `size` positions per row."""
    shape = (config.num_layers, batch_size, size, config.num_kv_heads,
             config.head_size)
    return cls(k=jnp.zeros(shape, config.jnp_dtype),
               v=jnp.zeros(shape, config.jnp_dtype),
               lengths=jnp.zeros((batch_size,), jnp.int32))

  @property
  def batch_size(self) -> int:
    return self.k.shape[1]

  @property
  def size(self) -> int:
    """S, the positions per row."""
    return self.k.shape[2]

  def take(self, rows: Array | Sequence[int]) -> 'KVCache':
    """Rows `rows` [B'] (repeats allowed: duplication for beams, samples)."""
    rows = jnp.asarray(rows, jnp.int32)
    assert rows.ndim == 1, f'rows must be 1-D, got shape {rows.shape}'
    return KVCache(k=jnp.take(self.k, rows, axis=1),
                   v=jnp.take(self.v, rows, axis=1),
                   lengths=jnp.take(self.lengths, rows, axis=0))


@flax.struct.dataclass
class DecodeState:
  """A cache plus each row's next-token logits.

  Everything a row has read or generated is in the cache; `logits` [B, V]
  (float32) is the model's distribution for the token after it. Decoding
  samples from `logits`, appends the sampled token (its logits computed in the
  same step), and so on; a finished row's final token (EOS, the end of a stop
  string) is in the cache too, so the state can be continued as it is.
  """

  cache: KVCache
  logits: Array  # [B, V] float32.

  @classmethod
  def init(cls, config: TransformerConfig, batch_size: int,
           cache_size: int) -> 'DecodeState':
    return cls(cache=KVCache.init(config, batch_size, cache_size),
               logits=jnp.zeros((batch_size, config.vocab_size), jnp.float32))

  @property
  def batch_size(self) -> int:
    return self.cache.batch_size

  @property
  def lengths(self) -> Array:
    """[B] tokens in the cache per row."""
    return self.cache.lengths

  def take(self, rows: Array | Sequence[int]) -> 'DecodeState':
    """Selects / duplicates rows without recomputing anything.

    Row i of the result is row rows[i]. Sampling streams follow the row index
    (see `sampling_params.row_keys`), so duplicated rows sample differently,
    and decoding the result equals decoding the same prompts from scratch.
    """
    rows = jnp.asarray(rows, jnp.int32)
    return DecodeState(cache=self.cache.take(rows),
                       logits=jnp.take(self.logits, rows, axis=0))

  def copy(self) -> 'DecodeState':
    """A copy, for keeping a state that `decode` / `extend` would donate."""
    return jax.tree.map(jnp.copy, self)
