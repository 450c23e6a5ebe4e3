"""What every verifier returns, and how step scores become one number.

A solution is a list of steps (the text split at blank lines by
`split_steps`). A verifier judges a batch of (question, steps) pairs and
returns one `Judgement` each: a score in [0, 1] per step (the probability
that the step, and so the solution up to it, is correct), the index of the
first wrong step when the verifier predicts one itself (generative
verifiers, judges), and the tokens it spent, so that search methods can be
compared at equal compute.

A verifier that cannot judge a candidate (an unparsable verdict, a crash)
returns `step_scores=None` and says why in `info`; callers treat that as "no
score", never as an error that stops a batch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol, Sequence

import numpy as np

# Steps are the blocks between blank lines, for every task.
from jaxreason.data.synthetic.arithmetic import split_steps  # pylint: disable=unused-import

AGGREGATIONS = ('last', 'min', 'prod', 'mean')


@dataclasses.dataclass(frozen=True)
class Judgement:
  """One verifier's judgement of one (possibly partial) solution.

  Attributes:
    step_scores: P(correct) after each step, one per step; None when the
      verifier could not judge (see `info['error']`).
    first_error: Predicted index of the earliest wrong step, -1 for "no
      error", None when the verifier does not predict one directly (scalar
      PRMs: the ProcessBench evaluation thresholds `step_scores` instead) or
      its output had no parsable index.
    tokens: Verifier tokens spent on this judgement (prompt + generated).
    info: Anything else worth recording (raw verifier text, parse errors).
  """
  step_scores: tuple[float, ...] | None
  first_error: int | None = None
  tokens: int = 0
  info: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def ok(self) -> bool:
    return self.step_scores is not None


class Verifier(Protocol):
  """Anything that judges solutions step by step."""

  def judge(self, questions: Sequence[str],
            steps: Sequence[Sequence[str]]) -> list[Judgement]:
    """One judgement per (question, steps) pair, in order."""
    ...


def join_steps(steps: Sequence[str]) -> str:
  return '\n\n'.join(steps)


def aggregate(step_scores: Sequence[float] | None, how: str) -> float | None:
  """One score from step scores: 'last', 'min', 'prod' or 'mean'.

  None (no judgement) and an empty list give None: an unjudged candidate
  has no score, it does not score 0.
  """
  if how not in AGGREGATIONS:
    raise ValueError(f'aggregation must be one of {AGGREGATIONS}, got {how!r}')
  if step_scores is None or len(step_scores) == 0:
    return None
  s = np.asarray(step_scores, np.float64)
  if how == 'last':
    return float(s[-1])
  if how == 'min':
    return float(s.min())
  if how == 'prod':
    return float(np.prod(s))
  return float(s.mean())


def first_below(step_scores: Sequence[float] | None,
                threshold: float) -> int | None:
  """Index of the first step scoring below `threshold`, -1 if none.

  How a scalar PRM predicts ProcessBench's earliest wrong step.
  """
  if step_scores is None:
    return None
  for i, s in enumerate(step_scores):
    if not math.isnan(s) and s < threshold:
      return i
  return -1
