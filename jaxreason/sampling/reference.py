"""Reference greedy decoding without a KV cache.

Each step runs the full forward pass over the whole (left-aligned, padded)
buffer. It is slow but obviously correct, so it serves as the reference the
KV-cache sampler is tested against, and as a simple evaluator for tiny models.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.models.transformer import Transformer, TransformerConfig


@functools.partial(jax.jit, static_argnames=('config', 'max_new_tokens'))
def _greedy(params: Any, buf: jax.Array, lengths: jax.Array, eos_id: jax.Array,
            *, config: TransformerConfig, max_new_tokens: int) -> jax.Array:
  """buf: [B, L] int32 with prompts left-aligned; lengths: [B] prompt lengths."""
  model = Transformer(config)
  b = buf.shape[0]

  def body(i, carry):
    buf, done = carry
    logits = model.apply({'params': params}, buf)  # [B, L, V]
    pos = lengths + i  # Where the next token goes.
    nxt = jnp.argmax(logits[jnp.arange(b), pos - 1], -1).astype(jnp.int32)
    nxt = jnp.where(done, 0, nxt)
    buf = buf.at[jnp.arange(b), pos].set(nxt)
    done = done | (nxt == eos_id)
    return buf, done

  buf, _ = jax.lax.fori_loop(0, max_new_tokens, body,
                             (buf, jnp.zeros((b,), bool)))
  return buf


def greedy_generate(params: Any, config: TransformerConfig,
                    prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                    eos_id: int, batch_size: int = 64) -> list[list[int]]:
  """Greedy completions (without the prompt, cut after EOS) for token prompts."""
  out: list[list[int]] = []
  for start in range(0, len(prompts), batch_size):
    chunk = list(prompts[start:start + batch_size])
    n = len(chunk)
    chunk += [chunk[-1]] * (batch_size - n)  # Fixed shape: one compilation.
    max_len = max(len(p) for p in chunk) + max_new_tokens
    max_len = -(-max_len // 32) * 32
    buf = np.zeros((batch_size, max_len), np.int32)
    for i, p in enumerate(chunk):
      buf[i, :len(p)] = p
    lengths = np.asarray([len(p) for p in chunk], np.int32)
    res = np.asarray(_greedy(params, jnp.asarray(buf), jnp.asarray(lengths),
                             jnp.int32(eos_id), config=config,
                             max_new_tokens=max_new_tokens))
    for i in range(n):
      gen = res[i, lengths[i]:lengths[i] + max_new_tokens].tolist()
      if eos_id in gen:
        gen = gen[:gen.index(eos_id) + 1]
      out.append(gen)
  return out
