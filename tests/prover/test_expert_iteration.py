"""Rejection sampling keeps what its formula says; the round logic counts right."""

import dataclasses

import numpy as np
import pytest

from jaxreason.prover import expert_iteration as ei
from jaxreason.prover.generators import Chain


class _ScriptedRng:
  """Returns the given u draws in order (fails if more are asked for)."""

  def __init__(self, draws):
    self.draws = list(draws)
    self.used = 0

  def uniform(self):
    u = self.draws[self.used]
    self.used += 1
    return u


class _RecordingRng:
  """A seeded NumPy generator that records every u it hands out."""

  def __init__(self, seed):
    self.rng = np.random.default_rng(seed)
    self.draws = []

  def uniform(self):
    self.draws.append(self.rng.uniform())
    return self.draws[-1]


def test_handmade_draws_one_pass():
  # beta 0.5: acceptance exp(2 (r - 0)) = [1, 0.135, 0.670, 0.0025].
  rng = _ScriptedRng([0.9, 0.5, 0.6, 0.001])
  kept = ei.rejection_sample([0.0, -1.0, -0.2, -3.0], 2, 0.5, rng)
  assert kept == [0, 2]
  assert rng.used == 3  # Stops as soon as two are accepted.


def test_handmade_draws_second_pass_uses_the_remaining_max():
  # Pass 1 (r_max 0): only 0 accepted. Pass 2 over [1, 2, 3], r_max -0.2:
  # acceptance [exp(-1.6)=0.202, 1, exp(-5.6)=0.0037].
  rng = _ScriptedRng([0.9, 0.5, 0.7, 0.5, 0.1, 0.99])
  kept = ei.rejection_sample([0.0, -1.0, -0.2, -3.0], 3, 0.5, rng)
  assert kept == [0, 1, 2]
  assert rng.used == 6


@pytest.mark.parametrize('seed', range(5))
def test_seeded_decisions_follow_the_formula(seed):
  beta = 0.5
  rewards = np.random.default_rng(100 + seed).normal(size=8)
  rng = _RecordingRng(seed)
  kept = ei.rejection_sample(rewards, 2, beta, rng)
  # Replay the draws: pass by pass, candidate by candidate.
  expected, pool, draws = [], list(range(8)), iter(rng.draws)
  while len(expected) < 2:
    r_max = rewards[pool].max()
    accept_prob = np.exp((rewards[pool] - r_max) / beta)
    taken = []
    for idx, p in zip(pool, accept_prob):
      if next(draws) < p:
        taken.append(idx)
        if len(expected) + len(taken) == 2:
          break
    expected += taken
    pool = [i for i in pool if i not in taken]
  assert kept == expected
  assert next(draws, None) is None  # No draw unaccounted for.


def test_more_samples_than_candidates_returns_all():
  rng = np.random.default_rng(0)
  kept = ei.rejection_sample([-0.3, -2.0, -9.0], 5, 0.5, rng)
  assert sorted(kept) == [0, 1, 2]
  assert ei.rejection_sample([], 2, 0.5, rng) == []
  assert ei.rejection_sample([1.0], 0, 0.5, rng) == []


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match='beta'):
    ei.rejection_sample([0.0], 1, 0.0, np.random.default_rng(0))
  with pytest.raises(ValueError, match='finite'):
    ei.rejection_sample([0.0, float('nan')], 1, 0.5, np.random.default_rng(0))


@dataclasses.dataclass
class _Report:
  proved: bool
  reason: str = ''


def test_select_and_verify_counts_calls_and_proved_problems():
  calls = []

  def check_fn(variables, hyps, goal, steps, *, timeout_s):
    calls.append((dict(variables), tuple(hyps), goal, tuple(steps), timeout_s))
    return _Report(steps[-1] == goal)

  good = Chain('{x:int} 2*x == 4 => x == 2', 'divide by 2', 'x == 2')
  wrong = Chain('{x:int} 2*x == 4 => x == 2', 'divide by 2', 'x == 3')
  garbage = Chain('2*x == 4 x == 2', 'divide', 'x == 2')  # Does not parse.
  result = ei.select_and_verify(
      ['p1', 'p2'], [[good, wrong, garbage], [wrong, garbage]],
      [[0.0, -0.1, -0.2], [0.0, -0.1]], num_keep=5, beta=0.5,
      rng=np.random.default_rng(0), check_fn=check_fn, timeout_s=1.5)
  # num_keep > candidates: every candidate is kept; garbage is not checked.
  assert result.kept == 5
  assert result.checker_calls == 3 == len(calls)
  assert result.verified == [('p1', good)]
  assert result.proved_problems == 1 and result.proved_share == 0.5
  assert calls[0] == ({'x': 'int'}, ('2*x == 4',), 'x == 2', ('x == 2',), 1.5)


def test_checker_errors_are_unproved_not_fatal():
  def check_fn(*args, **kwargs):
    raise SyntaxError('bad expression')

  v = ei.verify(Chain('{x:int} x > 0 => x > -1', 's', 'x >> 0'), check_fn,
                timeout_s=1.0)
  assert not v.proved and v.called and 'SyntaxError' in v.reason


def test_merge_pairs_keeps_seed_first_and_drops_duplicates():
  a, b = ('i1', Chain('f1', 's1', 'p1')), ('i2', Chain('f2', 's2', 'p2'))
  assert ei.merge_pairs([a], [b, a, b]) == [a, b]
