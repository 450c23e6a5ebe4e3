"""Rewards for RL on math problems, and a safe weighted sum of them.

Every reward function has the signature

  fn(completions: Sequence[str], golds: Sequence[str], lengths: [N] int)
      -> [N] float32

where `lengths` are completion lengths in tokens. `combine_rewards` sums named
reward functions with weights; a function that raises gives 0 for the
samples it fails on (with an absl warning) and never stops training.

Example:
  reward_fn = rewards_from_config({
      'accuracy': {'weight': 1.0},
      'format': {'weight': 0.5, 'thinking': True},
      'overlong': {'weight': 1.0, 'max_len': 4096, 'cache_len': 512},
  })
  total, parts = reward_fn(completions, golds, lengths)  # [N], {name: [N]}
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import numpy as np

from jaxreason.rewards import grader

RewardFn = Callable[[Sequence[str], Sequence[str], np.ndarray], np.ndarray]
CombinedFn = Callable[[Sequence[str], Sequence[str], np.ndarray],
                      tuple[np.ndarray, dict[str, np.ndarray]]]

THINK_CLOSE = '</think>'


def accuracy_reward(completions: Sequence[str], golds: Sequence[str],
                    lengths: np.ndarray | None = None, *,
                    after_think: bool = False) -> np.ndarray:
  """1.0 where `grader.grade(completion, gold)`, else 0.0: [N] float32.

  Args:
    completions: N model completions.
    golds: N reference answers.
    lengths: unused.
    after_think: grade only the text after the last `</think>` (a completion
      without one scores 0).
  """
  del lengths
  out = np.zeros(len(completions), np.float32)
  for i, (text, gold) in enumerate(zip(completions, golds, strict=True)):
    if after_think:
      if THINK_CLOSE not in text:
        continue
      text = text.rsplit(THINK_CLOSE, 1)[1]
    out[i] = float(grader.grade(text, gold))
  return out


def format_reward(completions: Sequence[str],
                  golds: Sequence[str] | None = None,
                  lengths: np.ndarray | None = None, *, thinking: bool = True,
                  require_answer: bool = True,
                  answer: str = 'boxed') -> np.ndarray:
  """1.0 for a well-formed completion, else 0.0: [N] float32.

  Well-formed: with `thinking`, exactly one `</think>` (the opening tag is
  usually in the prompt and is not counted); without it, no `</think>`. With
  `require_answer`, the text after `</think>` (or all of it) must also hold
  an answer: a complete `\\boxed{...}` (`answer='boxed'`) or anything
  `grader.extract_answer` finds (`answer='any'`, which includes a bare
  number).

  Args:
    completions: N model completions.
    golds: unused.
    lengths: unused.
    thinking: whether the model is asked to think first.
    require_answer: also require an answer after the thinking.
    answer: 'boxed' or 'any'.
  """
  del golds, lengths
  assert answer in ('boxed', 'any'), answer
  out = np.zeros(len(completions), np.float32)
  for i, text in enumerate(completions):
    closes = text.count(THINK_CLOSE)
    if closes != (1 if thinking else 0):
      continue
    tail = text.split(THINK_CLOSE, 1)[1] if thinking else text
    if require_answer:
      found = (grader.last_boxed(tail) if answer == 'boxed'
               else grader.extract_answer(tail))
      if found is None:
        continue
    out[i] = 1.0
  return out


def cosine_scaled(correct: np.ndarray, lengths: np.ndarray, *, max_len: int,
                  min_value_correct: float = 0.5,
                  max_value_correct: float = 1.0,
                  min_value_wrong: float = -1.0,
                  max_value_wrong: float = -0.5,
                  exceed_length: float | None = None) -> np.ndarray:
  """Cosine length-scaled reward (Yeo et al. 2025, "Demystifying Long CoT").

    r = eta_min + 0.5 * (eta_max - eta_min) * (1 + cos(pi * L / L_max))

  with L the length in tokens clamped to L_max, so r = eta_max at L = 0 and
  eta_min at L = L_max. Correct answers use (eta_min, eta_max) =
  (min_value_correct, max_value_correct): shorter is better. Wrong answers
  use (eta_min, eta_max) = (max_value_wrong, min_value_wrong), the swap of
  Open-R1's `get_cosine_scaled_reward` that Open-RS (Dang & Ngo 2025) trains
  with: a short wrong answer gets min_value_wrong, the worst reward, and a
  long one max_value_wrong, so the model is pushed to think longer when it
  is wrong. If `exceed_length` is set, every sample with L >= L_max gets
  that fixed reward instead (Yeo et al.'s exceed-length penalty).

  Differences from the Open-RS / Open-R1 code: (1) L is in tokens, not
  characters (`len(content)`); (2) L is clamped to L_max (there the cosine
  rises again past max_len); (3) the optional exceed-length penalty, which
  Open-R1 does not have; (4) no special case for unparsable references
  (Open-R1 gives those 1.0).

  Args:
    correct: [N] bool.
    lengths: [N] lengths in tokens.
    max_len: L_max.
    min_value_correct, max_value_correct: rewards of a correct answer at
      L = L_max and L = 0.
    min_value_wrong, max_value_wrong: rewards of a wrong answer at L = 0 and
      L = L_max.
    exceed_length: reward for L >= L_max, or None for no special case.

  Returns:
    [N] float32 rewards.
  """
  assert max_len > 0, max_len
  correct = np.asarray(correct, bool)
  lengths = np.asarray(lengths, np.float64)
  assert correct.shape == lengths.shape, (correct.shape, lengths.shape)
  progress = np.clip(lengths, 0, max_len) / max_len
  cosine = np.cos(progress * math.pi)
  eta_min = np.where(correct, min_value_correct, max_value_wrong)
  eta_max = np.where(correct, max_value_correct, min_value_wrong)
  reward = eta_min + 0.5 * (eta_max - eta_min) * (1.0 + cosine)
  if exceed_length is not None:
    reward = np.where(lengths >= max_len, exceed_length, reward)
  return reward.astype(np.float32)


def cosine_length_reward(completions: Sequence[str], golds: Sequence[str],
                         lengths: np.ndarray, *, max_len: int,
                         **kwargs: Any) -> np.ndarray:
  """`cosine_scaled` with correctness from `grader.grade`: [N] float32."""
  correct = accuracy_reward(completions, golds) > 0
  return cosine_scaled(correct, lengths, max_len=max_len, **kwargs)


def overlong_penalty(lengths: np.ndarray, *, max_len: int,
                     cache_len: int) -> np.ndarray:
  """DAPO's soft overlong punishment (Yu et al. 2025, eq. 13): [N] float32.

    R(L) = 0                               if L <= L_max - L_cache
         = ((L_max - L_cache) - L) / L_cache  if L_max - L_cache < L <= L_max
         = -1                              if L > L_max

  Args:
    lengths: [N] lengths in tokens.
    max_len: L_max.
    cache_len: L_cache, the length of the linear ramp (0 < L_cache <= L_max).
  """
  assert 0 < cache_len <= max_len, (cache_len, max_len)
  lengths = np.asarray(lengths, np.float64)
  start = max_len - cache_len
  ramp = (start - lengths) / cache_len
  reward = np.where(lengths <= start, 0.0, np.where(lengths <= max_len, ramp,
                                                    -1.0))
  return reward.astype(np.float32)


def overlong_reward(completions: Sequence[str], golds: Sequence[str],
                    lengths: np.ndarray, *, max_len: int,
                    cache_len: int) -> np.ndarray:
  """`overlong_penalty` as a reward function: [N] float32."""
  del completions, golds
  return overlong_penalty(lengths, max_len=max_len, cache_len=cache_len)


def _safe_call(name: str, fn: RewardFn, completions: Sequence[str],
               golds: Sequence[str], lengths: np.ndarray) -> np.ndarray:
  """fn on the batch; on failure, per sample, with 0 where it still fails."""
  n = len(completions)
  try:
    out = np.asarray(fn(completions, golds, lengths), np.float32)
    if out.shape != (n,):
      raise ValueError(f'returned shape {out.shape}, expected ({n},)')
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('reward %r failed on a batch of %d (%r); retrying per '
                    'sample', name, n, e)
    out = np.zeros(n, np.float32)
    for i in range(n):
      try:
        value = np.asarray(fn(completions[i:i + 1], golds[i:i + 1],
                              lengths[i:i + 1]), np.float32)
        out[i] = value.reshape(-1)[0] if value.size == 1 else 0.0
      except Exception as e_i:  # pylint: disable=broad-except
        logging.warning('reward %r raised on sample %d: %r; using 0', name, i,
                        e_i)
  bad = ~np.isfinite(out)
  if bad.any():
    logging.warning('reward %r is not finite on %d samples; using 0', name,
                    int(bad.sum()))
    out = np.where(bad, 0.0, out).astype(np.float32)
  return out


def combine_rewards(reward_fns: Mapping[str, RewardFn],
                    weights: Mapping[str, float] | None = None) -> CombinedFn:
  """A function returning (sum_k w_k * r_k [N], {k: r_k [N]}).

  Args:
    reward_fns: name -> reward function.
    weights: name -> weight (default 1.0 for every name); names must be a
      subset of `reward_fns`.

  Returns:
    fn(completions, golds, lengths) -> (total [N] float32, per-component
    unweighted rewards). A component that raises counts 0 for the samples it
    fails on and is logged with absl `logging.warning`.
  """
  weights = dict(weights or {})
  unknown = set(weights) - set(reward_fns)
  assert not unknown, f'weights for unknown rewards: {sorted(unknown)}'
  weights = {name: float(weights.get(name, 1.0)) for name in reward_fns}

  def combined(completions, golds, lengths):
    completions, golds = list(completions), list(golds)
    lengths = np.asarray(lengths)
    n = len(completions)
    assert len(golds) == n and lengths.shape == (n,), (
        n, len(golds), lengths.shape)
    parts = {name: _safe_call(name, fn, completions, golds, lengths)
             for name, fn in reward_fns.items()}
    total = np.zeros(n, np.float32)
    for name, value in parts.items():
      total += np.float32(weights[name]) * value
    return total, parts

  return combined


REWARDS = {
    'accuracy': accuracy_reward,
    'format': format_reward,
    'cosine': cosine_length_reward,
    'overlong': overlong_reward,
}


def rewards_from_config(config: Mapping[str, Mapping[str, Any]]
                        ) -> CombinedFn:
  """`combine_rewards` from {name: {'weight': w, **kwargs}} (a dict/ConfigDict).

  Names are keys of `REWARDS`; a `fn` entry may name another one, so that
  one reward can appear twice with different settings, e.g.
  {'short': {'fn': 'overlong', 'max_len': 1024, 'cache_len': 256}}.
  """
  fns, weights = {}, {}
  for name, entry in config.items():
    kwargs = dict(entry)
    weights[name] = float(kwargs.pop('weight', 1.0))
    base = REWARDS[kwargs.pop('fn', name)]
    fns[name] = functools.partial(base, **kwargs) if kwargs else base
  return combine_rewards(fns, weights)
