"""Diverse Verifier Tree Search (Beeching, Tunstall and Rush, 2024).

  results = dvts(gen, verifier, questions, prompts, n=16, width=4)

The N beams of a problem are split into N/M independent subtrees. Each
subtree keeps one path: every iteration its current node (a cache row) is
forked into M children that sample one step each, the verifier scores the
children, and the path moves to the best one (ties to the first; unscored
children rank last). A subtree ends when its chosen child is finished (EOS
or a closed box), when no child can go on (out of tokens), or at
`max_iterations` (then its path is an unfinished candidate, never an
answer). The answer is the best-scoring finished path.

Every child's tokens and every judgement are counted in the problem's
`Budget`, as for the other methods (N step samples per iteration, like a
beam search of N beams).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from jaxreason.data.synthetic import extract_boxed
from jaxreason.search import common
from jaxreason.search.common import Candidate, SearchResult
from jaxreason.search.generator import Generator
from jaxreason.verifiers.base import Verifier


@dataclasses.dataclass
class _Tree:
  problem: int
  path: Candidate
  row: int  # The path's row in the generator's pool.
  done: bool = False


def dvts(generator: Generator, verifier: Verifier | None,
         questions: Sequence[str], prompts: Sequence[str], n: int, *,
         width: int = 4, aggregation: str = 'last', max_iterations: int = 40,
         temperature: float = 1.0,
         extract=extract_boxed) -> list[SearchResult]:
  """DVTS with N/M subtrees of M children each (see the module docstring)."""
  if n < 1 or width < 1:
    raise ValueError(f'n={n} and width={width} must be >= 1')
  width = min(width, n)
  num_trees = n // width
  budgets = common.start(generator, prompts)
  trees = [_Tree(p, Candidate(''), p) for p in range(len(prompts))
           for _ in range(num_trees)]
  iterations = [0] * len(prompts)
  for _ in range(max_iterations):
    going = [t for t in trees if not t.done]
    if not going:
      break
    generator.select([t.row for t in going for _ in range(width)])
    pieces = generator.generate('step', temperature)
    children = []
    for k, piece in enumerate(pieces):
      t = going[k // width]
      c = dataclasses.replace(t.path, text=t.path.text + piece.text,
                              tokens=t.path.tokens + piece.num_tokens)
      common.add_piece(budgets[t.problem], piece)
      if common.is_finished(c.text, piece):
        common.finish(c, extract)
      children.append((c, piece))
    judgements = common.judge(
        verifier, [questions[going[k // width].problem]
                   for k in range(len(children))],
        [c.text for c, _ in children])
    for k, ((c, _), j) in enumerate(zip(children, judgements)):
      common.add_judgements(budgets[going[k // width].problem], [j])
      c.step_scores, c.score = j.step_scores, common.score_of(j, aggregation)
    for p in {t.problem for t in going}:
      iterations[p] += 1
    for i, t in enumerate(going):
      mine = list(range(i * width, (i + 1) * width))
      usable = [k for k in mine if children[k][0].finished
                or children[k][1].finish == 'stop']
      if not usable:  # Every child ran out of tokens: the path ends here.
        t.path = children[mine[0]][0]
        t.done = True
        continue
      best = max(usable, key=lambda k: common.rank_key(children[k][0].score))
      t.path, t.row = children[best][0], best
      t.done = t.path.finished
  results = []
  for p in range(len(prompts)):
    paths = [t.path for t in trees if t.problem == p]
    results.append(SearchResult(
        'dvts', common.best_finished(paths), paths, budgets[p], aggregation,
        {'n': n, 'width': width, 'subtrees': num_trees,
         'finished': sum(c.finished for c in paths),
         'iterations': iterations[p]}))
  return results
