"""Per-row sampling parameters and the sampling function the decoder uses.

Parameters are arrays, one value per row, so changing them never recompiles.
The filters follow Hugging Face's warpers in their order in `generate`:
temperature, then top-k, then top-p (on the top-k-renormalized distribution),
then min-p:

* temperature: logits / temperature; 0 means greedy (argmax of the logits).
* top_k: keep the k largest (ties with the k-th included); 0 = off.
* top_p: keep the smallest prefix of the sorted distribution whose mass
  reaches top_p, including the token that crosses it (HF TopPLogitsWarper);
  1 = off.
* min_p: keep tokens whose probability is at least min_p times the largest;
  0 = off.

Each filter keeps a set {logit >= threshold}, so the result is one threshold
per row and the sample is a Gumbel-max over the tokens above it. The sort
that top-k / top-p need is skipped (`lax.cond`) when no row uses them.

The log-prob returned with a token is log_softmax(logits / temperature) of it:
the policy's log-prob at that temperature before truncation, which is what
GRPO's importance ratio wants (`scoring.score` computes the same number).
Greedy rows use temperature 1 for it.
"""

from __future__ import annotations

from typing import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
_Value = float | int | Sequence[float] | np.ndarray | Array


def _rows(value: _Value, batch_size: int, dtype, name: str) -> Array:
  x = np.asarray(value, dtype)
  if x.ndim == 0:
    x = np.full((batch_size,), x, dtype)
  if x.shape != (batch_size,):
    raise ValueError(f'{name}: expected a scalar or {batch_size} values, got '
                     f'shape {x.shape}')
  return jnp.asarray(x)


@flax.struct.dataclass
class SamplingParams:
  """Sampling parameters of each row: all [B] arrays."""

  temperature: Array  # float32; 0 = greedy.
  top_p: Array  # float32 in (0, 1]; 1 = off.
  top_k: Array  # int32; 0 = off.
  min_p: Array  # float32 in [0, 1]; 0 = off.

  @classmethod
  def make(cls, batch_size: int, *, temperature: _Value = 1.0,
           top_p: _Value = 1.0, top_k: _Value = 0,
           min_p: _Value = 0.0) -> 'SamplingParams':
    """Scalars apply to every row; sequences give one value per row."""
    p = cls(temperature=_rows(temperature, batch_size, np.float32,
                              'temperature'),
            top_p=_rows(top_p, batch_size, np.float32, 'top_p'),
            top_k=_rows(top_k, batch_size, np.int32, 'top_k'),
            min_p=_rows(min_p, batch_size, np.float32, 'min_p'))
    t, tp, k, mp = (np.asarray(x) for x in (p.temperature, p.top_p, p.top_k,
                                            p.min_p))
    if (t < 0).any() or not np.isfinite(t).all():
      raise ValueError(f'temperature must be finite and >= 0, got {t}')
    if ((tp <= 0) | (tp > 1)).any():
      raise ValueError(f'top_p must be in (0, 1], got {tp}')
    if (k < 0).any():
      raise ValueError(f'top_k must be >= 0, got {k}')
    if ((mp < 0) | (mp > 1)).any():
      raise ValueError(f'min_p must be in [0, 1], got {mp}')
    return p

  @classmethod
  def greedy(cls, batch_size: int) -> 'SamplingParams':
    return cls.make(batch_size, temperature=0.0)

  def take(self, rows: Array | Sequence[int]) -> 'SamplingParams':
    rows = jnp.asarray(rows, jnp.int32)
    return jax.tree.map(lambda x: jnp.take(x, rows, axis=0), self)


def row_keys(rng: Array, positions: Array) -> Array:
  """One key per row: fold_in(fold_in(rng, row index), position).

  positions [B]: the cache index the sampled token goes to. The stream of row
  b depends only on (rng, b, position), not on the other rows or on how the
  decoding is split into calls, so n samples of a prompt drawn from a shared
  prefill and from n copies of the prompt are the same tokens.
  """
  rows = jnp.arange(positions.shape[0], dtype=jnp.uint32)
  per_row = jax.vmap(jax.random.fold_in, (None, 0))(rng, rows)
  return jax.vmap(jax.random.fold_in)(per_row, positions.astype(jnp.uint32))


def keep_threshold(scaled: Array, params: SamplingParams) -> Array:
  """[B] threshold: the filtered support of row b is {scaled >= thr[b]}.

  scaled: [B, V] float32 logits already divided by the temperature.
  """
  b, v = scaled.shape
  top = scaled.max(-1)
  # min-p: p_i >= min_p * p_max  <=>  logit_i >= max + log(min_p).
  thr = jnp.where(params.min_p > 0, top + jnp.log(params.min_p), -jnp.inf)

  def sorted_thresholds(_):
    desc = -jnp.sort(-scaled, axis=-1)  # [B, V], largest first.
    k = jnp.clip(params.top_k, 1, v)
    kth = jnp.take_along_axis(desc, (k - 1)[:, None], -1)[:, 0]
    thr_k = jnp.where(params.top_k > 0, kth, -jnp.inf)
    # top-p on the distribution renormalized over the top-k set.
    in_k = desc >= thr_k[:, None]
    probs = jax.nn.softmax(jnp.where(in_k, desc, -jnp.inf), axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # Mass strictly before i.
    count = jnp.sum(in_k & (before < params.top_p[:, None]), axis=-1)
    count = jnp.maximum(count, 1)  # Keep at least one token.
    thr_p = jnp.take_along_axis(desc, (count - 1)[:, None], -1)[:, 0]
    thr_p = jnp.where(params.top_p < 1, thr_p, -jnp.inf)
    return jnp.maximum(thr_k, thr_p)

  sampled = params.temperature > 0
  needs_sort = jnp.any(sampled & ((params.top_k > 0) | (params.top_p < 1)))
  thr_sorted = jax.lax.cond(needs_sort, sorted_thresholds,
                            lambda _: jnp.full((b,), -jnp.inf), None)
  return jnp.maximum(thr, thr_sorted)


def filtered_log_probs(logits: Array, params: SamplingParams) -> Array:
  """[B, V] log-probabilities of the distribution `sample_tokens` draws from.

  (-inf outside the kept set; greedy rows are not special-cased here.)
  """
  temp = jnp.where(params.temperature > 0, params.temperature, 1.0)
  scaled = logits.astype(jnp.float32) / temp[:, None]
  keep = scaled >= keep_threshold(scaled, params)[:, None]
  return jax.nn.log_softmax(jnp.where(keep, scaled, -jnp.inf), axis=-1)


def sample_tokens(logits: Array, keys: Array,
                  params: SamplingParams) -> tuple[Array, Array]:
  """Draws one token per row.

  Args:
    logits: [B, V] next-token logits.
    keys: [B] PRNG keys (`row_keys`).
    params: [B] sampling parameters.

  Returns:
    tokens [B] int32 and their log-probs [B] float32 under
    log_softmax(logits / temperature) (temperature 1 for greedy rows).
  """
  b, v = logits.shape
  assert keys.shape[0] == b and params.temperature.shape == (b,), (
      keys.shape, params.temperature.shape, logits.shape)
  logits = logits.astype(jnp.float32)
  greedy = params.temperature <= 0
  temp = jnp.where(greedy, 1.0, params.temperature)
  scaled = logits / temp[:, None]  # [B, V]
  keep = scaled >= keep_threshold(scaled, params)[:, None]
  gumbel = jax.vmap(lambda k: jax.random.gumbel(k, (v,), jnp.float32))(keys)
  sampled = jnp.argmax(jnp.where(keep, scaled + gumbel, -jnp.inf), axis=-1)
  tokens = jnp.where(greedy, jnp.argmax(logits, axis=-1), sampled)
  tokens = tokens.astype(jnp.int32)
  logprobs = jnp.take_along_axis(jax.nn.log_softmax(scaled, axis=-1),
                                 tokens[:, None], -1)[:, 0]
  return tokens, logprobs
