"""The sampling function against Hugging Face's warpers, statistically.

20k draws per setting from fixed logits over 16 tokens, through the same
`sample_tokens` the decode loop calls, are compared with the distribution
that transformers' Temperature / TopK / TopP / MinP warpers (applied in
`generate`'s order) define: a chi-square test, and no draw outside the kept
set. The kept set itself (found by bisection, without a sort) is compared
exactly with a sort-based NumPy version of those warpers on random logits,
with and without ties.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxreason.sampling import SamplingParams
from jaxreason.sampling import sample_tokens
from jaxreason.sampling.sampling_params import filtered_log_probs
from jaxreason.sampling.sampling_params import row_keys

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')
lp = transformers.generation.logits_process

V = 16
DRAWS = 20_000
LOGITS = np.random.default_rng(0).normal(0, 1.5, V).astype(np.float32)
# (temperature, top_p, top_k, min_p).
SETTINGS = [
    (1.0, 1.0, 0, 0.0),
    (0.7, 0.8, 0, 0.0),
    (1.3, 1.0, 5, 0.0),
    (1.0, 1.0, 0, 0.1),
    (0.9, 0.9, 6, 0.05),
    (2.0, 0.5, 0, 0.0),
]


def _hf_probs(temperature, top_p, top_k, min_p) -> np.ndarray:
  scores = torch.tensor(LOGITS)[None]
  warpers = [lp.TemperatureLogitsWarper(temperature)]
  if top_k:
    warpers.append(lp.TopKLogitsWarper(top_k))
  if top_p < 1:
    warpers.append(lp.TopPLogitsWarper(top_p))
  if min_p:
    warpers.append(lp.MinPLogitsWarper(min_p))
  for w in warpers:
    scores = w(None, scores)
  return torch.softmax(scores, -1)[0].double().numpy()


@jax.jit
def _draw(logits, keys, params):
  return sample_tokens(logits, keys, params)


def test_frequencies_match_hf_warpers():
  rows = len(SETTINGS) * DRAWS
  temperature, top_p, top_k, min_p = (np.repeat(x, DRAWS) for x in
                                      zip(*SETTINGS))
  params = SamplingParams.make(rows, temperature=temperature, top_p=top_p,
                               top_k=top_k, min_p=min_p)
  logits = jnp.broadcast_to(LOGITS, (rows, V))
  keys = row_keys(jax.random.key(1234), jnp.zeros((rows,), jnp.int32))
  tokens, logprobs = _draw(logits, keys, params)
  tokens = np.asarray(tokens).reshape(len(SETTINGS), DRAWS)
  ours = np.exp(np.asarray(filtered_log_probs(logits[:len(SETTINGS)],
                                              params.take(
                                                  np.arange(len(SETTINGS))
                                                  * DRAWS))))
  for i, setting in enumerate(SETTINGS):
    expected = _hf_probs(*setting)
    kept = expected > 0
    np.testing.assert_allclose(ours[i], expected, atol=1e-6)
    counts = np.bincount(tokens[i], minlength=V)
    assert counts[~kept].sum() == 0, (setting, counts, expected)
    if kept.sum() > 1:
      f_exp = expected[kept] / expected[kept].sum() * DRAWS
      chi2 = stats.chisquare(counts[kept], f_exp)
      print(setting, f"kept {kept.sum()} p={chi2.pvalue:.3f}")
      assert chi2.pvalue > 1e-3, (setting, chi2, counts, expected)
  # The log-prob is that of the temperature-scaled, unfiltered distribution.
  t = temperature[:, None]
  ref = jax.nn.log_softmax(LOGITS[None] / t, -1)
  np.testing.assert_allclose(
      np.asarray(logprobs), np.take_along_axis(
          np.asarray(ref), tokens.reshape(-1, 1), -1)[:, 0], atol=1e-5)


def test_nucleus_includes_the_crossing_token():
  # Probabilities 0.5, 0.3, 0.2: top_p=0.6 keeps two tokens, 0.5 keeps one.
  logits = jnp.log(jnp.array([[0.3, 0.5, 0.2]] * 3))
  params = SamplingParams.make(3, top_p=[0.6, 0.5, 0.8 + 1e-3])
  kept = np.isfinite(np.asarray(filtered_log_probs(logits, params)))
  np.testing.assert_array_equal(kept, [[1, 1, 0], [0, 1, 0], [1, 1, 1]])


def test_greedy_rows_and_determinism():
  rng = np.random.default_rng(3)
  logits = jnp.asarray(rng.normal(0, 2, (8, 50)), jnp.float32)
  params = SamplingParams.make(8, temperature=[0, 1, 0, 0.5, 0, 2, 0, 1],
                               top_p=0.9, top_k=[0, 3, 0, 0, 7, 0, 0, 0])
  keys = row_keys(jax.random.key(7), jnp.arange(8))
  tokens, logprobs = _draw(logits, keys, params)
  greedy = np.asarray(params.temperature) == 0
  np.testing.assert_array_equal(np.asarray(tokens)[greedy],
                                np.argmax(np.asarray(logits), -1)[greedy])
  ref = np.asarray(jax.nn.log_softmax(logits, -1))
  np.testing.assert_allclose(
      np.asarray(logprobs)[greedy],
      ref[greedy, np.asarray(tokens)[greedy]], atol=1e-6)
  again, _ = _draw(logits, keys, params)
  np.testing.assert_array_equal(np.asarray(tokens), np.asarray(again))
  other, _ = _draw(logits, row_keys(jax.random.key(8), jnp.arange(8)),
                   params)
  assert (np.asarray(other) != np.asarray(tokens))[~greedy].any()


def _np_keep(x, top_k, top_p, min_p) -> np.ndarray:
  """HF's TopK, TopP, MinP warpers on float32 scaled logits x [V], by sorting.

  Tokens tied with the k-th largest / with the token crossing top_p are kept.
  """
  keep = np.ones(x.shape, bool)
  if top_k:
    keep &= x >= np.sort(x)[::-1][min(top_k, x.size) - 1]
  if top_p < 1:
    xs = np.where(keep, x, -np.inf).astype(np.float64)
    p = np.exp(xs - xs.max())
    p /= p.sum()
    order = np.argsort(-xs, kind='stable')
    # HF removes the ascending-order prefix with cumulative mass <= 1 - top_p:
    # it keeps token i of the descending order iff the mass before it is
    # < top_p (and at least one token).
    before = np.cumsum(p[order]) - p[order]
    count = max(int(np.sum(before < top_p)), 1)
    keep &= x >= xs[order][count - 1]
  if min_p:
    xs = np.where(keep, x, -np.inf).astype(np.float64)
    p = np.exp(xs - xs.max())
    keep &= p >= min_p * p.max()
  return keep


@pytest.mark.parametrize('ties', [False, True])
def test_kept_set_matches_sorting_reference(ties):
  settings = list(itertools.product([0.7, 1.0, 1.5], [0.0001, 0.5, 0.999, 1.0],
                                    [0, 1, 5], [0.0, 0.05]))
  rows, v = len(settings), 1000
  rng = np.random.default_rng(5 + ties)
  logits = rng.normal(0, 2, (rows, v)).astype(np.float32)
  if ties:  # Few distinct values: large groups of equal logits.
    logits = np.round(logits * 2) / 2
  temperature, top_p, top_k, min_p = (np.asarray(x) for x in zip(*settings))
  params = SamplingParams.make(rows, temperature=temperature, top_p=top_p,
                               top_k=top_k, min_p=min_p)
  kept = np.isfinite(np.asarray(
      jax.jit(filtered_log_probs)(jnp.asarray(logits), params)))
  scaled = logits / temperature[:, None].astype(np.float32)
  for i, setting in enumerate(settings):
    _, p, k, m = setting
    expected = _np_keep(scaled[i], k, p, m)
    np.testing.assert_array_equal(kept[i], expected, err_msg=str(setting))
  # And the sampler draws only from the kept set.
  for seed in range(3):
    keys = row_keys(jax.random.key(seed), jnp.full((rows,), seed))
    tokens, _ = _draw(jnp.asarray(logits), keys, params)
    assert kept[np.arange(rows), np.asarray(tokens)].all()


def test_greedy_takes_the_first_maximum():
  logits = jnp.asarray([[0.0, 2.0, 1.0, 2.0], [3.0, 3.0, -1.0, 3.0]])
  params = SamplingParams.greedy(2)
  tokens, _ = _draw(logits, row_keys(jax.random.key(0), jnp.zeros(2, int)),
                    params)
  np.testing.assert_array_equal(np.asarray(tokens), [1, 0])


def test_draws_at_large_vocabulary():
  # Several blocks of the inverse-CDF search; top_k keeps 5 spread tokens.
  v, rows = 5000, 4000
  logits = np.full(v, -3.0, np.float32)
  top = np.array([7, 1100, 2047, 2048, 4999])
  logits[top] = np.log([0.1, 0.2, 0.3, 0.15, 0.25])
  params = SamplingParams.make(rows, top_k=5)
  keys = row_keys(jax.random.key(9), jnp.arange(rows))
  tokens, _ = _draw(jnp.broadcast_to(logits, (rows, v)), keys, params)
  counts = np.bincount(np.asarray(tokens), minlength=v)
  assert counts.sum() == counts[top].sum()
  chi2 = stats.chisquare(counts[top], np.array([.1, .2, .3, .15, .25]) * rows)
  assert chi2.pvalue > 1e-3, (chi2, counts[top])


def test_invalid_parameters_are_rejected():
  with pytest.raises(ValueError, match='top_p'):
    SamplingParams.make(2, top_p=0.0)
  with pytest.raises(ValueError, match='temperature'):
    SamplingParams.make(2, temperature=-1.0)
  with pytest.raises(ValueError, match='3 values'):
    SamplingParams.make(3, top_k=[1, 2])
