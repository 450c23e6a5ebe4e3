"""Solutions with a known first wrong step, for process-reward labels.

`make_flawed_solution` injects one error at a chosen step and then continues
the chain consistently from the wrong value, the way a model that slipped once
would. This gives ProcessBench-style labels (index of the first wrong step)
with no annotator: `check_solution` recovers exactly that index.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxreason.data.synthetic import arithmetic

ERROR_KINDS = ('result', 'operand')


@dataclasses.dataclass(frozen=True)
class FlawedSolution:
  """A solution whose first wrong step is known.

  Attributes:
    text: Full solution text (steps, then `\\boxed{answer}`).
    steps: The step strings.
    first_wrong_step: Index of the injected error.
    step_correct: Per-step `check_step` verdicts; False at `first_wrong_step`,
      and usually (not always) False after it, since later steps start from a
      wrong value.
    answer: The (usually wrong) final answer written in the box.
    answer_correct: Whether `answer` happens to equal the true answer (e.g.
      after multiplying by 0, or when a modulus maps both values together).
    error_kind: 'result' or 'operand', see `make_flawed_solution`.
  """
  text: str
  steps: tuple[str, ...]
  first_wrong_step: int
  step_correct: tuple[bool, ...]
  answer: str
  answer_correct: bool
  error_kind: str


def _other_value(rng: np.random.Generator, value: int,
                 modulus: int | None) -> int:
  """A value != `value`: uniform in [0, modulus) or `value` +- 1..9."""
  if modulus is not None:
    return (value + int(rng.integers(1, modulus))) % modulus
  delta = int(rng.integers(1, 10))
  return value + delta if rng.random() < 0.5 else value - delta


def _other_operand(rng: np.random.Generator, b: int) -> int:
  """A non-negative operand != `b`: another digit, or `b` +- 1..9."""
  if b < 10:
    return (b + int(rng.integers(1, 10))) % 10
  delta = int(rng.integers(1, 10))
  return b + delta if rng.random() < 0.5 else b - delta


def make_flawed_solution(rng: np.random.Generator,
                         problem: arithmetic.Problem,
                         *,
                         error_step: int | None = None,
                         error_kind: str = 'result') -> FlawedSolution:
  """Returns a solution to `problem` whose first wrong step is `error_step`.

  Steps before `error_step` are the reference steps. At `error_step` one of:
    * 'result': an arithmetic slip, the right expression with a wrong result;
    * 'operand': a misread operand, e.g. `3+7=10` where the question said +5,
      computed correctly from the wrong operand (its result can coincide
      with the true one, but the step is still wrong).
  Later steps apply the true operators and operands to the wrong running
  value, correctly. Drawing the error and the error step uses `rng`.

  Args:
    rng: Random generator.
    problem: The problem.
    error_step: Index of the first wrong step; uniform over steps if None.
    error_kind: 'result' or 'operand'.

  Returns:
    The flawed solution and its labels.
  """
  k = problem.num_steps
  if error_step is None:
    error_step = int(rng.integers(k))
  if not 0 <= error_step < k:
    raise ValueError(f'error_step must be in [0, {k}), got {error_step}.')
  if error_kind not in ERROR_KINDS:
    raise ValueError(f'error_kind must be one of {ERROR_KINDS}: {error_kind}.')
  mod = problem.modulus
  steps = list(problem.steps[:error_step])
  a = problem.inputs[error_step]
  for i in range(error_step, k):
    op, b = problem.ops[i], problem.operands[i]
    if i == error_step and error_kind == 'operand':
      b = _other_operand(rng, b)
    r = arithmetic.apply_op(a, op, b, mod)
    if i == error_step and error_kind == 'result':
      r = _other_value(rng, r, mod)
    steps.append(arithmetic.format_step(a, op, b, r))
    a = r
  answer = str(a)
  step_correct = tuple(
      arithmetic.check_step(problem, i, s) for i, s in enumerate(steps))
  assert not step_correct[error_step] and all(step_correct[:error_step]), (
      'Injected error not detected.', problem, steps)
  return FlawedSolution(
      text=arithmetic.format_solution(steps, answer),
      steps=tuple(steps),
      first_wrong_step=error_step,
      step_correct=step_correct,
      answer=answer,
      answer_correct=answer == problem.answer,
      error_kind=error_kind,
  )
