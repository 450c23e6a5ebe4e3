"""Teacher-forced scoring against NumPy, and against the sampler's log-probs."""

import jax
import numpy as np
import pytest

from jaxreason.sampling import SamplingParams
from jaxreason.sampling import score

from sampling_testlib import BATCH, CONFIG, full_logits, prompts_of


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_score_matches_numpy(params):
  prompts = prompts_of([4, 1, 9], seed=20)
  conts = prompts_of([5, 3, 0], seed=21)
  temps = [1.0, 0.5, 2.0]
  got = score(params, CONFIG, prompts, conts, temps)
  for p, c, t, g in zip(prompts, conts, temps, got):
    logits = full_logits(params, p + c).astype(np.float64)
    logp = _log_softmax(logits / t)
    ref = [logp[len(p) - 1 + j, tok] for j, tok in enumerate(c)]
    assert g.shape == (len(c),)
    np.testing.assert_allclose(g, ref, atol=1e-5)
  with pytest.raises(ValueError, match='prompt 0 is empty'):
    score(params, CONFIG, [[]], [[1]])


def test_sampler_logprobs_are_scores_at_the_temperature(params, sampler):
  """Returned log-probs: log_softmax(logits / T), before top-p truncation."""
  prompts = prompts_of([6, 13, 2, 9], seed=22)
  temps = np.array([0.7, 1.0, 1.5, 0.0], np.float32)
  sp = SamplingParams.make(BATCH, temperature=temps, top_p=0.9)
  state = sampler.prefill(params, prompts)
  _, out = sampler.decode(params, state, sp, jax.random.key(0), 12)
  tokens = out.token_lists()
  got = score(params, CONFIG, prompts, tokens, np.where(temps > 0, temps, 1))
  for g, lp in zip(got, out.logprob_lists()):
    np.testing.assert_allclose(lp, g, atol=1e-5)
