"""Greedy decoding, best-of-N, weighted best-of-N and majority voting.

All of them sample whole solutions: each prompt is encoded once and its N
samples fork from that cache (`Generator.select`), then one decode call
writes every sample to the end. They differ in how an answer is chosen
among the finished samples:

  'best'      the sample with the highest aggregated verifier score;
  'weighted'  the answer whose samples' scores sum highest (Li et al. 2023;
              the aggregation asked for is the one used, whatever it is);
  'majority'  the most frequent answer (no verifier needed).

Votes count answers the grader calls equal as one (`jaxreason.search.voting`:
`0.5`, `1/2` and `\\frac{1}{2}` are one vote). With no scored sample at all,
'best' and 'weighted' fall back to 'majority' and record it in
`info['fallback']`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from jaxreason.data.synthetic import extract_boxed
from jaxreason.search import common, voting
from jaxreason.search.common import Candidate, SearchResult
from jaxreason.search.generator import Generator
from jaxreason.verifiers.base import Judgement, Verifier

SELECTIONS = ('best', 'weighted', 'majority')


def best_of_n(generator: Generator, verifier: Verifier | None,
              questions: Sequence[str], prompts: Sequence[str], n: int, *,
              select: str = 'best', aggregation: str = 'last',
              temperature: float = 1.0,
              extract=extract_boxed) -> list[SearchResult]:
  """N samples per problem, an answer chosen by `select` (see module doc)."""
  if select not in SELECTIONS:
    raise ValueError(f'select must be one of {SELECTIONS}, got {select!r}')
  if n < 1:
    raise ValueError(f'n={n} must be >= 1')
  budgets = common.start(generator, prompts)
  p = len(prompts)
  generator.select([i for i in range(p) for _ in range(n)])
  pieces = generator.generate('end', temperature)
  cands = []
  for row, piece in enumerate(pieces):
    c = Candidate(piece.text, tokens=piece.num_tokens)
    if common.is_finished(c.text, piece):
      common.finish(c, extract)
    common.add_piece(budgets[row // n], piece)
    cands.append(c)
  if select != 'majority' and verifier is not None:
    judgements = common.judge(verifier,
                              [questions[r // n] for r in range(p * n)],
                              [c.text for c in cands])
    for r, (c, j) in enumerate(zip(cands, judgements)):
      c.step_scores = j.step_scores
      c.score = common.score_of(j, aggregation)
      common.add_judgements(budgets[r // n], [j])
  return [_choose(cands[i * n:(i + 1) * n], budgets[i], select, aggregation)
          for i in range(p)]


METHODS = {'best': 'best_of_n', 'weighted': 'weighted_best_of_n',
           'majority': 'majority'}


def _choose(cands: list[Candidate], budget, select: str,
            aggregation: str) -> SearchResult:
  done = [c for c in cands if c.finished]
  scored = any(c.score is not None for c in done)
  info = {'n': len(cands), 'finished': len(done)}
  if select == 'majority' or not scored:
    if select != 'majority' and done:
      info['fallback'] = 'majority (no finished candidate has a score)'
    answer = voting.majority_vote([c.answer for c in done])
  elif select == 'best':
    answer = common.best_finished(cands)
  else:
    answer = voting.weighted_vote([c.answer for c in done],
                                  [c.score for c in done])
  return SearchResult(METHODS[select], answer, cands, budget,
                      None if select == 'majority' else aggregation, info)


def reselect(result: SearchResult, select: str,
             aggregation: str | None = None) -> SearchResult:
  """The same samples (of a `best_of_n` run) with another selection rule.

  With `aggregation`, scores are aggregated anew from the step scores.
  Majority voting reads no scores, so its budget leaves the verifier out.
  """
  if select not in SELECTIONS:
    raise ValueError(f'select must be one of {SELECTIONS}, got {select!r}')
  budget = dataclasses.replace(result.budget)
  if select == 'majority':
    budget.verifier_tokens, budget.verifier_flops = 0, 0.0
  how = aggregation or result.aggregation or 'last'
  cands = result.candidates
  if aggregation is not None:
    cands = [dataclasses.replace(c, score=common.score_of(
        Judgement(c.step_scores), how)) for c in cands]
  return _choose(cands, budget, select, how)


def greedy(generator: Generator, questions: Sequence[str],
           prompts: Sequence[str], *,
           extract=extract_boxed) -> list[SearchResult]:
  """One greedy (temperature 0) solution per problem; no verifier."""
  results = best_of_n(generator, None, questions, prompts, 1,
                      select='majority', temperature=0.0, extract=extract)
  for r in results:
    r.method = 'greedy'
  return results
