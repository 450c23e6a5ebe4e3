"""An exact step verifier for the synthetic arithmetic task (an upper bound).

  verifier = OracleVerifier()   # or OracleVerifier(problems) to skip parsing
  [j] = verifier.judge([question], [['3+5=8', '8*2=6', '\\boxed{6}']])
  j.step_scores  # (1.0, 1.0, 1.0)

Step i scores 1.0 when steps 0..i are all correct (right input, operator,
operand and result: `synthetic.check_step`) and 0.0 from the first wrong
step on, so every aggregation (last, min, prod, mean) ranks a correct
prefix above a wrong one. The `\\boxed{}` block is a step too: it scores 1.0
when every problem step came before it, correct, and the box holds the
answer. Anything after the box, or a step past the chain's length, is
wrong. The problem comes from the question text (`synthetic.parse_question`)
or from `problems` given up front; a question neither yields gets no score
(`step_scores=None`), as the Verifier protocol asks. The oracle reads no
tokens: `tokens=0`.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from jaxreason.data import synthetic
from jaxreason.verifiers.base import Judgement


class OracleVerifier:
  """Scores steps of synthetic arithmetic solutions exactly."""

  def __init__(self, problems: Iterable[synthetic.Problem] = ()):
    self._problems = {p.question.strip(): p for p in problems}

  def problem(self, question: str) -> synthetic.Problem | None:
    q = question.strip()
    if q not in self._problems:
      parsed = synthetic.parse_question(q)
      if parsed is None:
        return None
      self._problems[q] = parsed
    return self._problems[q]

  def judge(self, questions: Sequence[str],
            steps: Sequence[Sequence[str]]) -> list[Judgement]:
    if len(questions) != len(steps):
      raise ValueError(f'{len(questions)} questions, {len(steps)} solutions')
    return [self._judge_one(q, s) for q, s in zip(questions, steps)]

  def _judge_one(self, question: str, steps: Sequence[str]) -> Judgement:
    problem = self.problem(question)
    if problem is None:
      return Judgement(None, info={'error': 'question is not a synthetic '
                                   'arithmetic problem'})
    scores, ok, boxed = [], True, False
    for i, step in enumerate(steps):
      answer = synthetic.extract_boxed(step)
      if boxed:  # Nothing may follow the answer.
        ok = False
      elif answer is not None and step.strip().startswith('\\boxed{'):
        boxed = True
        ok = ok and i == problem.num_steps and (
            answer.strip() == problem.answer)
      else:
        ok = ok and synthetic.check_step(problem, i, step)
      scores.append(1.0 if ok else 0.0)
    first_error = scores.index(0.0) if 0.0 in scores else -1
    return Judgement(tuple(scores), first_error=first_error, tokens=0)
