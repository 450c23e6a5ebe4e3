"""Verifier-guided beam search over steps (Snell et al. 2024; Beeching et al.).

  results = beam_search(gen, verifier, questions, prompts, n=16, width=4)

Per problem: N rows sample a first step each from the one encoded prompt.
Then, each iteration: every live beam is scored by the verifier (on its
steps so far, or after a greedy lookahead of k more steps that is then
thrown away), duplicates are dropped, the best ceil(slots / M) beams are
kept and forked into `slots` children (about M each), and every child
samples its next step. A step ends at a blank line (the sampler's stop
string) and continues from the cached prefix: forking is a gather of cache
rows, nothing already encoded is encoded again.

A beam that ends (EOS, or a closed box) leaves the pool as a finished
candidate, and its slot is not refilled: `slots = N - finished`, so at most
N beams ever finish and the pool never holds more than N rows -- the search
spends no more than best-of-N's N samples (the public reference keeps
expanding N beams after some finish). Finished beams are ranked by their
aggregated score, not by the order in which they finished. A beam that runs
out of tokens, or is live when `max_iterations` is reached, is an
unfinished candidate and never an answer.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from jaxreason.data.synthetic import extract_boxed
from jaxreason.search import common
from jaxreason.search.common import Candidate, SearchResult
from jaxreason.search.generator import Generator
from jaxreason.verifiers.base import Verifier


@dataclasses.dataclass
class _Beam:
  problem: int
  cand: Candidate


def lookahead_texts(generator: Generator, beams: Sequence[_Beam],
                    live: Sequence[bool], k: int, budgets) -> list[str]:
  """Each live beam's text after k more greedy steps; the pool is restored."""
  texts = [b.cand.text for b in beams]
  if k <= 0 or not any(live):
    return texts
  saved = generator.save()
  going = list(live)
  for _ in range(k):
    pieces = generator.generate('step', 0.0, going)
    for i, piece in enumerate(pieces):
      if not going[i]:
        continue
      texts[i] += piece.text
      common.add_piece(budgets[beams[i].problem], piece)
      if piece.finish != 'stop' or common.is_finished(texts[i], piece):
        going[i] = False
    if not any(going):
      break
  generator.restore(saved)
  return texts


def beam_search(generator: Generator, verifier: Verifier | None,
                questions: Sequence[str], prompts: Sequence[str], n: int, *,
                width: int = 4, aggregation: str = 'last', lookahead: int = 0,
                max_iterations: int = 40, temperature: float = 1.0,
                dedupe: bool = True,
                extract=extract_boxed) -> list[SearchResult]:
  """Beam search with N beams of width M (see the module docstring)."""
  if n < 1 or width < 1:
    raise ValueError(f'n={n} and width={width} must be >= 1')
  width = min(width, n)
  num_problems = len(prompts)
  budgets = common.start(generator, prompts)
  finished: list[list[Candidate]] = [[] for _ in range(num_problems)]
  dropped: list[list[Candidate]] = [[] for _ in range(num_problems)]
  beams = [_Beam(p, Candidate('')) for p in range(num_problems)
           for _ in range(n)]
  generator.select([b.problem for b in beams])
  iterations = [0] * num_problems
  for _ in range(max_iterations):
    if not beams:
      break
    pieces = generator.generate('step', temperature)
    live = []
    for b, piece in zip(beams, pieces):
      b.cand.text += piece.text
      b.cand.tokens += piece.num_tokens
      common.add_piece(budgets[b.problem], piece)
      if common.is_finished(b.cand.text, piece):
        common.finish(b.cand, extract)
      live.append(not b.cand.finished and piece.finish == 'stop')
    for p in {b.problem for b in beams}:
      iterations[p] += 1
    # Score finished beams on their text, live ones after the lookahead.
    texts = lookahead_texts(generator, beams, live, lookahead, budgets)
    judgements = common.judge(verifier,
                              [questions[b.problem] for b in beams], texts)
    for b, j in zip(beams, judgements):
      common.add_judgements(budgets[b.problem], [j])
      b.cand.step_scores, b.cand.score = j.step_scores, common.score_of(
          j, aggregation)
    # Per problem: finished beams leave, the best live ones are forked.
    rows: list[int] = []
    survivors: list[_Beam] = []
    for p in range(num_problems):
      mine = [(i, b) for i, b in enumerate(beams) if b.problem == p]
      finished[p] += [b.cand for _, b in mine if b.cand.finished]
      alive = [(i, b) for i, b in mine if live[i]]
      dropped[p] += [b.cand for i, b in mine
                     if not live[i] and not b.cand.finished]
      if dedupe:
        seen, unique = set(), []
        for i, b in alive:
          if b.cand.text not in seen:
            seen.add(b.cand.text)
            unique.append((i, b))
        alive = unique
      slots = n - len(finished[p])
      if slots <= 0 or not alive:
        dropped[p] += [b.cand for _, b in alive]
        continue
      alive.sort(key=lambda ib: -common.rank_key(ib[1].cand.score))
      keep = alive[:min(len(alive), math.ceil(slots / width))]
      dropped[p] += [b.cand for _, b in alive[len(keep):]]
      for j in range(slots):
        i, b = keep[j % len(keep)]
        rows.append(i)
        survivors.append(_Beam(p, dataclasses.replace(b.cand)))
    beams = survivors
    if beams:
      generator.select(rows)
  results = []
  for p in range(num_problems):
    live_left = [b.cand for b in beams if b.problem == p]
    ranked = sorted(finished[p], key=lambda c: -common.rank_key(c.score))
    answer = common.best_finished(ranked)
    results.append(SearchResult(
        'beam_search', answer, ranked + live_left, budgets[p], aggregation,
        {'n': n, 'width': width, 'lookahead': lookahead,
         'finished': len(finished[p]), 'iterations': iterations[p],
         'unfinished_live': len(live_left), 'pruned': len(dropped[p])}))
  return results
