"""pass@k estimator and Wilson interval (jaxreason.evals.pass_at_k)."""

import itertools
import math
import random

import pytest
from scipy import stats

from jaxreason.evals import pass_at_k


@pytest.mark.parametrize('n, c, k', [
    (1, 0, 1), (1, 1, 1), (10, 0, 1), (10, 3, 1), (10, 3, 5), (10, 7, 4),
    (10, 10, 10), (20, 1, 10), (100, 13, 1), (100, 13, 10), (200, 5, 100),
    (5, 2, 4)])
def test_pass_at_k_matches_binomial_closed_form(n, c, k):
  # Chen et al. (2021), eq. 1: 1 - C(n-c, k) / C(n, k) (C(m, k) = 0 if m < k).
  expected = 1.0 - math.comb(n - c, k) / math.comb(n, k)
  assert pass_at_k.pass_at_k_estimate(n, c, k) == pytest.approx(
      expected, rel=1e-12, abs=1e-15)


def test_pass_at_1_is_the_fraction_correct():
  for n in range(1, 12):
    for c in range(n + 1):
      assert pass_at_k.pass_at_k_estimate(n, c, 1) == pytest.approx(c / n)


def test_pass_at_k_is_the_mean_over_subsets_of_size_k():
  # The estimator is the probability that a uniformly chosen k-subset of the
  # n samples holds at least one correct one: count the subsets directly.
  rng = random.Random(0)
  for n, k in [(6, 2), (7, 3), (8, 5)]:
    for c in range(n + 1):
      correct = set(rng.sample(range(n), c))
      subsets = list(itertools.combinations(range(n), k))
      hit = sum(bool(correct & set(s)) for s in subsets) / len(subsets)
      assert pass_at_k.pass_at_k_estimate(n, c, k) == pytest.approx(hit)


# Newcombe (1998), "Two-sided confidence intervals for the single proportion:
# comparison of seven methods", Statistics in Medicine 17:857-872, Table II,
# method 3 (Wilson score interval without continuity correction), 95%.
NEWCOMBE_1998 = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0),
]


@pytest.mark.parametrize('x, n, lo, hi', NEWCOMBE_1998)
def test_wilson_matches_published_values(x, n, lo, hi):
  got_lo, got_hi = pass_at_k.wilson_interval(x, n)
  assert got_lo == pytest.approx(lo, abs=6e-5)
  assert got_hi == pytest.approx(hi, abs=6e-5)


def _wilson_closed_form(x, n, level):
  # Wilson (1927): the p that solve |p_hat - p| = z sqrt(p (1 - p) / n).
  z = stats.norm.ppf(0.5 + level / 2)
  p = x / n
  a = 1 + z * z / n
  b = -(2 * p + z * z / n)
  c = p * p
  disc = math.sqrt(b * b - 4 * a * c)
  return (-b - disc) / (2 * a), (-b + disc) / (2 * a), z


@pytest.mark.parametrize('x, n, level', [
    (81, 263, 0.95), (3, 10, 0.95), (7, 9, 0.9), (50, 100, 0.99),
    (12.5, 40, 0.95), (0, 5, 0.8), (5, 5, 0.95)])
def test_wilson_matches_quadratic_roots(x, n, level):
  lo, hi, z = _wilson_closed_form(x, n, level)
  got = pass_at_k.wilson_interval(x, n, z=z)
  assert got == pytest.approx((max(lo, 0.0), min(hi, 1.0)), abs=1e-12)


def test_wilson_with_no_trials_is_uninformative():
  assert pass_at_k.wilson_interval(0, 0) == (0.0, 1.0)
