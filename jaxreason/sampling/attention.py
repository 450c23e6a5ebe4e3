"""Which attention the model runs over the KV cache: jnp or the Pallas kernel.

`make_attention_fn(AttentionSpec(impl, block_size, interpret))` returns the
`AttentionFn` the model calls once per layer in cache mode: the blocked jnp
`jaxreason.models.attention.cached_attention` everywhere ('jnp'), or the
Pallas decode kernel (`jaxreason.sampling.kernels.decode_attention`) for
single-token decode steps and `cached_attention` for prefill chunks
('pallas').
"""

from __future__ import annotations

import dataclasses

from jaxreason.models.attention import AttentionFn, cached_attention
from jaxreason.sampling.kernels import decode_attention

IMPLEMENTATIONS = ('jnp', 'pallas')


@dataclasses.dataclass(frozen=True)
class AttentionSpec:
  """Which cache attention to run; hashable, so a static jit argument.

  impl: 'jnp' (`cached_attention` everywhere) or 'pallas' (the kernel for
    single-token decode steps, `cached_attention` for prefill chunks).
  block_size: keys per block (the cache size is a multiple of it).
  interpret: run the Pallas kernel in interpret mode (CPU tests).
  """

  impl: str = 'jnp'
  block_size: int = 256
  interpret: bool = False

  def __post_init__(self):
    if self.impl not in IMPLEMENTATIONS:
      raise ValueError(f'attention impl {self.impl!r}: expected one of '
                       f'{IMPLEMENTATIONS}')
    if self.block_size <= 0:
      raise ValueError(f'block_size={self.block_size} must be positive')


def make_attention_fn(spec: AttentionSpec) -> AttentionFn:
  """The cache-mode attention the model calls once per layer."""
  pallas = spec.impl == 'pallas'

  def fn(q, k_all, v_all, q_positions, kv_lengths, layer):
    if pallas and q.shape[1] == 1:
      # One token per row: its key is the last valid one, so "key <= query
      # position" is "key < kv_length", the kernel's mask. The kernel takes
      # the stacked cache and the layer (read in place on GPU).
      out = decode_attention(q[:, 0], k_all, v_all, kv_lengths, layer=layer,
                               block_size=spec.block_size,
                               interpret=spec.interpret)
      return out[:, None]
    return cached_attention(q, k_all, v_all, q_positions, kv_lengths,
                            block_size=spec.block_size, layer=layer)

  return fn
