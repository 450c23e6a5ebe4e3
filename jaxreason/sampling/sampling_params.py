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
per row. Nothing is sorted: the top-k and top-p thresholds are found by
bisection over the ordered bit patterns of the float32 logits (32 passes of a
masked count / masked sum over [B, V]; the threshold is always the value of
some token, so ties with it are kept), each skipped (`lax.cond`) when no row
uses it. The token is then drawn by inverse CDF: one uniform per row, located
in the cumulative kept mass by a two-level (block, then within-block) search.
A full sort over V = 151936 costs seconds at batch 32 on a CPU and a Gumbel
draw per token costs a threefry call per logit; both dominated decoding.

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


_SIGN = np.uint32(0x80000000)


def _ordered(x: Array) -> Array:
  """float32 -> uint32 with the same order (-0.0 and +0.0 both map to +0.0)."""
  bits = jax.lax.bitcast_convert_type(jnp.where(x == 0, 0.0, x), jnp.uint32)
  return jnp.where(bits >= _SIGN, ~bits, bits | _SIGN)


def _from_ordered(key: Array) -> Array:
  bits = jnp.where(key >= _SIGN, key & ~_SIGN, ~key)
  return jax.lax.bitcast_convert_type(bits, jnp.float32)


def _bisect(holds, lo: Array, hi: Array) -> Array:
  """Largest t in [lo, hi) with holds(t), for holds monotone decreasing in t.

  lo, hi: [B] uint32 with holds(lo) true and hi > lo (rows with hi = lo + 1
  are done from the start). holds: [B] uint32 -> [B] bool.
  """
  def body(c):
    lo, hi = c
    mid = lo + (hi - lo) // 2
    ok = holds(mid)
    return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

  lo, _ = jax.lax.while_loop(lambda c: jnp.any(c[1] - c[0] > 1), body,
                             (lo, hi))
  return lo


def keep_threshold(scaled: Array, params: SamplingParams) -> Array:
  """[B] threshold: the filtered support of row b is {scaled >= thr[b]}.

  scaled: [B, V] float32 logits already divided by the temperature.
  """
  b, v = scaled.shape
  top = scaled.max(-1)
  # min-p: p_i >= min_p * p_max  <=>  logit_i >= max + log(min_p).
  thr = jnp.where(params.min_p > 0, top + jnp.log(params.min_p), -jnp.inf)
  sampled = params.temperature > 0
  use_k = params.top_k > 0
  use_p = params.top_p < 1

  def top_k_top_p(_):
    key = _ordered(scaled)  # [B, V]
    key_lo = key.min(-1)
    key_hi = _ordered(top) + 1  # Nothing is >= it (NaN logits aside).

    def kth_largest(_):
      # Largest t with #{key >= t} >= k: the k-th largest value.
      k = jnp.clip(params.top_k, 1, v)
      holds = lambda t: jnp.sum(key >= t[:, None], -1, dtype=jnp.int32) >= k
      return _bisect(holds, key_lo, jnp.where(use_k, key_hi, key_lo + 1))

    def nucleus(lo):
      # top-p on the distribution renormalized over the top-k set
      # {key >= lo}: the largest t whose upper set {key >= t} has mass
      # >= top_p. It is the value of the token that crosses top_p (HF keeps
      # it), ties included.
      e = jnp.exp(scaled - top[:, None])  # [B, V] unnormalized probs.
      mass = lambda t: jnp.sum(jnp.where(key >= t[:, None], e, 0.0), -1)
      target = params.top_p * mass(lo)
      return _bisect(lambda t: mass(t) >= target, lo,
                     jnp.where(use_p, key_hi, lo + 1))

    lo = jax.lax.cond(jnp.any(sampled & use_k), kth_largest,
                      lambda _: key_lo, None)
    lo = jax.lax.cond(jnp.any(sampled & use_p), nucleus, lambda lo: lo, lo)
    return jnp.where(use_k | use_p, _from_ordered(lo), -jnp.inf)

  thr_kp = jax.lax.cond(jnp.any(sampled & (use_k | use_p)), top_k_top_p,
                        lambda _: jnp.full((b,), -jnp.inf), None)
  return jnp.maximum(thr, thr_kp)


def filtered_log_probs(logits: Array, params: SamplingParams) -> Array:
  """[B, V] log-probabilities of the distribution `sample_tokens` draws from.

  (-inf outside the kept set; greedy rows are not special-cased here.)
  """
  temp = jnp.where(params.temperature > 0, params.temperature, 1.0)
  scaled = logits.astype(jnp.float32) / temp[:, None]
  keep = scaled >= keep_threshold(scaled, params)[:, None]
  return jax.nn.log_softmax(jnp.where(keep, scaled, -jnp.inf), axis=-1)


def _inverse_cdf(weights: Array, u: Array, block: int = 1024) -> Array:
  """[B] int32: the first token whose cumulative weight exceeds u * total.

  weights: [B, V] >= 0 with a positive entry in each row; u: [B] in [0, 1).
  Two levels: cumulative sums of blocks pick the block, then the cumulative
  sum inside it picks the token. A zero-weight token is never returned (the
  picks are clamped to the last positive block / token against rounding).
  """
  b, v = weights.shape
  nb = -(-v // block)
  w = jnp.pad(weights, ((0, 0), (0, nb * block - v))).reshape(b, nb, block)
  sums = w.sum(-1)  # [B, nb]
  cum = jnp.cumsum(sums, -1)
  before = jnp.pad(cum[:, :-1], ((0, 0), (1, 0)))  # Exclusive cumsum.
  target = u * cum[:, -1]
  ids = jnp.arange(nb, dtype=jnp.int32)
  last = jnp.max(jnp.where(sums > 0, ids, 0), -1)
  blk = jnp.minimum(jnp.sum(cum <= target[:, None], -1, dtype=jnp.int32),
                    last)  # [B]
  rest = target - jnp.take_along_axis(before, blk[:, None], -1)[:, 0]
  inner = jnp.take_along_axis(w, blk[:, None, None], 1)[:, 0]  # [B, block]
  ids = jnp.arange(block, dtype=jnp.int32)
  last = jnp.max(jnp.where(inner > 0, ids, 0), -1)
  pos = jnp.minimum(jnp.sum(jnp.cumsum(inner, -1) <= rest[:, None], -1,
                            dtype=jnp.int32), last)
  return blk * block + pos


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
  top = scaled.max(-1)
  # A greedy row keeps only its maxima and draws u = 0: the first maximum,
  # i.e. the argmax.
  thr = jnp.where(greedy, top, keep_threshold(scaled, params))
  u = jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32))(keys)
  u = jnp.where(greedy, 0.0, u)
  e = jnp.exp(scaled - top[:, None])  # [B, V]
  tokens = _inverse_cdf(jnp.where(scaled >= thr[:, None], e, 0.0), u)
  # log_softmax(scaled)[token], as jax.nn.log_softmax computes it.
  picked = jnp.take_along_axis(scaled, tokens[:, None], -1)[:, 0]
  logprobs = picked - top - jnp.log(e.sum(-1))
  return tokens, logprobs
