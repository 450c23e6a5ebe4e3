r"""Majority and weighted voting over final answers the grader calls equal.

  majority_vote(['0.5', '1/2', '\\frac{1}{2}', '3', None]) -> '0.5'
  weighted_vote(['3', '1/2', '0.5'], [0.9, 0.5, 0.5])      -> '1/2'

Answers are grouped into classes with `jaxreason.rewards.grader.answers_match`
(so '0.5', '1/2' and '\\frac{1}{2}' are one vote): each answer joins the
first class, in order of first appearance, whose first answer it matches
(either way round), else opens a new class. Equivalence by the grader is
not always transitive (tolerances); comparing with each class's first member
keeps the grouping deterministic.

None answers (no answer could be extracted, or the candidate is unfinished)
never vote; neither do None or NaN scores in `weighted_vote`.

Ties: the class whose first member comes earliest in the list wins, and the
winner is returned as that first member, written as it was. So the result
depends only on the order of the candidates, never on hashing or on the
order classes are visited.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from jaxreason.rewards import grader

MatchFn = Callable[[str, str], bool]


def _same(a: str, b: str, match: MatchFn) -> bool:
  a, b = a.strip(), b.strip()
  return a == b or match(a, b) or match(b, a)


def answer_classes(answers: Sequence[str | None],
                   match: MatchFn = grader.answers_match
                   ) -> list[int | None]:
  """Class index per answer (None for None), classes numbered by first use.

  Args:
    answers: extracted final answers; None for "no answer".
    match: the equivalence test (default: the grader's `answers_match`).

  Returns:
    A list as long as `answers`; equal indices mean equivalent answers, and
    class i's first member comes before class i+1's.
  """
  firsts: list[str] = []
  known: dict[str, int] = {}  # Exact (stripped) strings already classed.
  out: list[int | None] = []
  for a in answers:
    if a is None or not str(a).strip():
      out.append(None)
      continue
    a = str(a)
    key = a.strip()
    if key not in known:
      known[key] = next((i for i, f in enumerate(firsts)
                         if _same(a, f, match)), len(firsts))
      if known[key] == len(firsts):
        firsts.append(a)
    out.append(known[key])
  return out


def vote_from_classes(classes: Sequence[int | None],
                      weights: Sequence[float | None] | None = None
                      ) -> int | None:
  """Position of the winning class's first member, or None if none votes.

  Each position with a class votes for it with its weight (1 without
  `weights`; None or NaN weights do not vote). The largest total wins; ties
  go to the class whose first voting member comes first.
  """
  if weights is not None and len(weights) != len(classes):
    raise ValueError(f'{len(classes)} answers but {len(weights)} scores')
  totals: dict[int, float] = {}
  first: dict[int, int] = {}
  for i, c in enumerate(classes):
    w = 1.0 if weights is None else weights[i]
    if c is None or w is None or math.isnan(float(w)):
      continue
    totals[c] = totals.get(c, 0.0) + float(w)
    first.setdefault(c, i)
  if not totals:
    return None
  best = max(totals, key=lambda c: (totals[c], -first[c]))
  return first[best]


def majority_vote(answers: Sequence[str | None],
                  match: MatchFn = grader.answers_match) -> str | None:
  """The most frequent answer up to grader equivalence; None if no answers.

  Args:
    answers: extracted final answers, None for candidates without one.
    match: the equivalence test (default: the grader's `answers_match`).

  Returns:
    The winning class's first answer as written (ties: the class that
    appears first), or None when every answer is None.
  """
  answers = list(answers)
  i = vote_from_classes(answer_classes(answers, match))
  return None if i is None else answers[i]


def weighted_vote(answers: Sequence[str | None],
                  scores: Sequence[float | None],
                  match: MatchFn = grader.answers_match) -> str | None:
  """The answer with the largest summed score (weighted best-of-N).

  Args:
    answers: extracted final answers, None for candidates without one.
    scores: one verifier score per candidate, already aggregated over steps
      by the caller; None (the verifier could not judge) or NaN: no vote.
    match: the equivalence test (default: the grader's `answers_match`).

  Returns:
    The first answer, as written, of the class with the largest total score
    (ties: the class that appears first among the voting candidates), or
    None when no candidate has both an answer and a score.
  """
  answers = list(answers)
  if len(scores) != len(answers):
    raise ValueError(f'{len(answers)} answers but {len(scores)} scores')
  # Unscored candidates are left out of the classes as well as the vote.
  kept = [a if s is not None and not math.isnan(float(s)) else None
          for a, s in zip(answers, scores)]
  i = vote_from_classes(answer_classes(kept, match), scores)
  return None if i is None else answers[i]
