"""What every search method returns, and the pieces they share.

Each method returns one `SearchResult` per problem: the chosen answer (None
when no candidate finished with one), every candidate with its step scores
and aggregated score, the `Budget` spent on the problem, and the step-score
aggregation it used. A candidate is finished when the policy ended it (EOS)
or it holds a closed `\\boxed{}`; an unfinished one (out of tokens or
iterations) never counts as an answer, whatever its score.

Verifier failures never stop a search: `judge` turns an exception or a
malformed batch into per-candidate judgements with no score (logged), and a
candidate without a score ranks below every scored one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

from absl import logging

from jaxreason.data.synthetic import extract_boxed
from jaxreason.search.budget import Budget
from jaxreason.search.generator import Piece
from jaxreason.verifiers.base import aggregate, Judgement, split_steps, Verifier

ExtractFn = Callable[[str], 'str | None']


@dataclasses.dataclass
class Candidate:
  """One solution a method produced for a problem."""

  text: str  # Generated text (without the prompt).
  finished: bool = False
  answer: str | None = None  # Only for finished candidates.
  step_scores: tuple[float, ...] | None = None
  score: float | None = None  # Aggregated step scores; None: unscored.
  tokens: int = 0  # Policy tokens generated for it (lookahead excluded).

  def as_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


@dataclasses.dataclass
class SearchResult:
  """One method's outcome on one problem."""

  method: str
  answer: str | None
  candidates: list[Candidate]
  budget: Budget
  aggregation: str | None = None  # Step-score aggregation used to rank.
  info: dict[str, Any] = dataclasses.field(default_factory=dict)

  def as_dict(self) -> dict[str, Any]:
    return {'method': self.method, 'answer': self.answer,
            'aggregation': self.aggregation, 'budget': self.budget.as_dict(),
            'candidates': [c.as_dict() for c in self.candidates],
            'info': self.info}


def is_finished(text: str, piece: Piece) -> bool:
  """EOS, or a closed box in the text: the solution has its final answer."""
  return piece.finish == 'eos' or extract_boxed(text) is not None


def finish(candidate: Candidate, extract: ExtractFn = extract_boxed) -> None:
  candidate.finished = True
  candidate.answer = extract(candidate.text)


def rank_key(score: float | None) -> float:
  """Sort key, larger first: no score ranks below every score."""
  return -math.inf if score is None else score


def judge(verifier: Verifier | None, questions: Sequence[str],
          texts: Sequence[str]) -> list[Judgement]:
  """Judgements of (question, text) pairs; failures give unscored ones."""
  n = len(texts)
  if verifier is None:
    return [Judgement(None, info={'error': 'no verifier'})] * n
  if n == 0:
    return []
  steps = [split_steps(t) for t in texts]
  try:
    out = list(verifier.judge(list(questions), steps))
    if len(out) != n:
      raise ValueError(f'{len(out)} judgements for {n} solutions')
    return out
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('verifier failed on a batch of %d (%r); judging one by '
                    'one', n, e)
  out = []
  for q, s in zip(questions, steps):
    try:
      [j] = verifier.judge([q], [s])
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('verifier failed on a candidate: %r', e)
      j = Judgement(None, info={'error': repr(e)})
    out.append(j)
  return out


def score_of(j: Judgement, how: str) -> float | None:
  """The aggregated score, None when unscored or not a finite number."""
  try:
    s = aggregate(j.step_scores, how)
  except (TypeError, ValueError) as e:
    logging.warning('unusable step scores %r: %r', j.step_scores, e)
    return None
  return s if s is not None and math.isfinite(s) else None


def add_judgements(budget: Budget, judgements: Sequence[Judgement]) -> None:
  """Verifier tokens (and FLOPs, when a verifier records info['flops'])."""
  for j in judgements:
    budget.verifier_tokens += int(j.tokens)
    budget.verifier_flops += float(j.info.get('flops', 0.0))


def add_piece(budget: Budget, piece: Piece) -> None:
  budget.policy_tokens += piece.num_tokens
  budget.policy_flops += piece.flops


def start(generator: Any, prompts: Sequence[str]) -> list[Budget]:
  """Starts the pool (each prompt encoded once); the prompt cost per problem."""
  return [Budget(prompt_tokens=t, policy_flops=f)
          for t, f in generator.start(prompts)]


def best_finished(candidates: Sequence[Candidate]) -> str | None:
  """The answer of the highest-scoring finished candidate with one.

  Ties (and unscored candidates) go to the earliest candidate.
  """
  pool = [c for c in candidates if c.finished and c.answer is not None]
  if not pool:
    return None
  return max(pool, key=lambda c: rank_key(c.score)).answer
