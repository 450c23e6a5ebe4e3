"""Math rewards against formulas written out here in NumPy."""

import math

from absl import logging
import ml_collections
import numpy as np
import pytest

from jaxreason.rewards import math_rewards


def _cosine_reference(correct, length, max_len, c_min, c_max, w_min, w_max,
                      exceed):
  """Yeo et al. (2025) CosFn, with Open-R1's swap for wrong answers."""
  if exceed is not None and length >= max_len:
    return exceed
  t = min(length, max_len)
  lo, hi = (c_min, c_max) if correct else (w_max, w_min)
  return lo + 0.5 * (hi - lo) * (1 + math.cos(t * math.pi / max_len))


def _dapo_reference(length, max_len, cache):
  if length <= max_len - cache:
    return 0.0
  if length <= max_len:
    return ((max_len - cache) - length) / cache
  return -1.0


@pytest.mark.parametrize('exceed', [None, -2.0])
def test_cosine_scaled_matches_formula(exceed):
  max_len = 100
  lengths = np.array([0, 1, 25, 50, 99, 100, 101, 1000] * 2)
  correct = np.array([True] * 8 + [False] * 8)
  got = math_rewards.cosine_scaled(
      correct, lengths, max_len=max_len, min_value_correct=0.5,
      max_value_correct=1.0, min_value_wrong=-1.0, max_value_wrong=-0.5,
      exceed_length=exceed)
  want = [_cosine_reference(c, l, max_len, 0.5, 1.0, -1.0, -0.5, exceed)
          for c, l in zip(correct, lengths)]
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  assert got.dtype == np.float32 and got.shape == (16,)


def test_cosine_scaled_edges():
  r = math_rewards.cosine_scaled(
      np.array([True, True, False, False, True]),
      np.array([0, 64, 0, 64, 5000]), max_len=64)
  # L = 0: eta_max; L = L_max: eta_min; L > L_max: clamped to L_max.
  np.testing.assert_allclose(r, [1.0, 0.5, -1.0, -0.5, 0.5], atol=1e-6)
  r = math_rewards.cosine_scaled(np.array([True, False, True]),
                                 np.array([63, 64, 65]), max_len=64,
                                 exceed_length=-3.0)
  assert r[0] > 0.5 and r[1] == -3.0 and r[2] == -3.0


def test_overlong_penalty_matches_formula():
  max_len, cache = 1000, 200
  lengths = np.array([0, 1, 799, 800, 801, 900, 999, 1000, 1001, 5000])
  got = math_rewards.overlong_penalty(lengths, max_len=max_len,
                                      cache_len=cache)
  want = [_dapo_reference(l, max_len, cache) for l in lengths]
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(got[[0, 3, 5, 7, 8]], [0, 0, -0.5, -1, -1])


def test_accuracy_reward():
  completions = ['so \\boxed{\\frac12}', 'I think 3. \\boxed{4}', 'no idea',
                 '<think>\\boxed{2}</think> The answer is $3$.']
  golds = ['0.5', '3', '1', '3']
  np.testing.assert_array_equal(
      math_rewards.accuracy_reward(completions, golds), [1, 0, 0, 0])
  np.testing.assert_array_equal(
      math_rewards.accuracy_reward(completions, golds, after_think=True),
      [0, 0, 0, 1])


def test_format_reward():
  completions = [
      'reasoning</think>\nSo \\boxed{5}.',  # good
      'reasoning</think>\nSo 5.',  # no box
      'a</think>b</think>\\boxed{5}',  # two closing tags
      'no thinking \\boxed{5}',  # no closing tag
      'reasoning</think>\\boxed{5',  # unclosed box
  ]
  np.testing.assert_array_equal(math_rewards.format_reward(completions),
                                [1, 0, 0, 0, 0])
  np.testing.assert_array_equal(
      math_rewards.format_reward(completions, answer='any'), [1, 1, 0, 0, 1])
  np.testing.assert_array_equal(
      math_rewards.format_reward(completions, require_answer=False),
      [1, 1, 0, 0, 1])
  np.testing.assert_array_equal(
      math_rewards.format_reward(completions, thinking=False),
      [0, 0, 0, 1, 0])


def test_combine_rewards_weights_and_parts():
  completions = ['</think>\\boxed{2}', '</think>\\boxed{3}', 'x']
  golds = ['2', '2', '2']
  lengths = np.array([10, 950, 2000])
  fn = math_rewards.rewards_from_config(ml_collections.ConfigDict({
      'accuracy': {'weight': 1.0},
      'format': {'weight': 0.5},
      'overlong': {'weight': 2.0, 'max_len': 1000, 'cache_len': 100},
      'cosine': {'weight': 0.25, 'max_len': 1000, 'exceed_length': -1.0},
  }))
  total, parts = fn(completions, golds, lengths)
  acc = np.array([1.0, 0.0, 0.0])
  fmt = np.array([1.0, 1.0, 0.0])
  over = np.array([_dapo_reference(l, 1000, 100) for l in lengths])
  cos = np.array([_cosine_reference(c, l, 1000, 0.5, 1.0, -1.0, -0.5, -1.0)
                  for c, l in zip(acc > 0, lengths)])
  for name, want in [('accuracy', acc), ('format', fmt), ('overlong', over),
                     ('cosine', cos)]:
    np.testing.assert_allclose(parts[name], want, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(
      total, acc + 0.5 * fmt + 2.0 * over + 0.25 * cos, rtol=1e-6, atol=1e-6)
  assert total.shape == (3,) and total.dtype == np.float32


def test_raising_reward_counts_zero_and_logs(monkeypatch):
  warnings = []
  monkeypatch.setattr(logging, 'warning',
                      lambda msg, *args: warnings.append(msg % args))

  def flaky(completions, golds, lengths):
    del golds, lengths
    if any('boom' in c for c in completions):
      raise RuntimeError('boom')
    return np.full(len(completions), 2.0)

  def always(completions, golds, lengths):
    raise ValueError('broken')

  def nan(completions, golds, lengths):
    return np.array([np.nan] + [1.0] * (len(completions) - 1))

  fn = math_rewards.combine_rewards(
      {'flaky': flaky, 'always': always, 'nan': nan, 'one': lambda c, g, l:
       np.ones(len(c))}, {'flaky': 1.0, 'always': 5.0, 'nan': 1.0})
  total, parts = fn(['ok', 'boom', 'ok'], ['1', '1', '1'], np.array([1, 2, 3]))
  np.testing.assert_array_equal(parts['flaky'], [2.0, 0.0, 2.0])
  np.testing.assert_array_equal(parts['always'], [0.0, 0.0, 0.0])
  np.testing.assert_array_equal(parts['nan'], [0.0, 1.0, 1.0])
  np.testing.assert_array_equal(total, [3.0, 2.0, 4.0])
  assert any('boom' in w and 'sample 1' in w for w in warnings), warnings
  assert any('broken' in w for w in warnings), warnings


def test_combine_rejects_unknown_weight():
  with pytest.raises(AssertionError):
    math_rewards.combine_rewards({'a': math_rewards.format_reward}, {'b': 1.0})
