"""Multi-step arithmetic word problems: a small, exactly verifiable task.

A problem is a chain `v0 -> v1 -> ... -> vK`: a start value `v0` and K
operations `v{i+1} = v{i} op_i b_i`. The solution writes one step per
operation, separated by blank lines, and ends with the answer in a box:

  Ann has 7 pens. She gets 5 more, loses 4, then multiplies them by 3.
  How many pens now? Answer mod 10.
  7+5=2

  2-4=8

  8*3=4

  \\boxed{4}

Step format. Each step is `a op b=r`: it names its inputs, so it can be
verified on its own (`check_step`). With a modulus `m` (stated once, in the
question) the equation holds mod `m` and `r` is reduced to `[0, m)` with
Python's `%` (so `2-4=8` mod 10); without one it is plain integer arithmetic
and values may be negative (`2-4=-2`). Leaving `%m` out of every step keeps
texts short for a character-level model.

Texts use printable ASCII and newlines only, and are short because the
intended tokenizer has one token per character: a 4-step single-digit word
problem plus its solution is 125-190 characters (mean 150; 2 steps: ~110,
6 steps: ~190; the bare form is ~35 characters shorter).

Difficulty knobs (all in `ArithmeticConfig`): `num_steps` (chain length, the
main knob), the operand range, the operator set, the modulus (with `None`
numbers grow and may turn negative, which is much harder), and
`word_problem` (templates vs the bare "Start at 3. Add 5, ..." form).

The canonical training text is `format_prompt(problem) + problem.solution`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import numpy as np

OPS = ('+', '-', '*')

_NAMES = (
    ('Ann', 'she'), ('Bob', 'he'), ('Cal', 'he'), ('Dee', 'she'),
    ('Eve', 'she'), ('Max', 'he'), ('Sam', 'he'), ('Zoe', 'she'),
)
_ITEMS = ('pens', 'cards', 'coins', 'shells', 'apples', 'stamps', 'beads')

# Each template: (intro, phrases for + - *, closing question, plural noun or
# None to draw one from _ITEMS). Placeholders: {name} {pron} (capitalized) {a}
# {noun} (singular when a == 1) {items} (plural) {ops} {b}.
_TEMPLATES = (
    ('{name} has {a} {noun}. {pron} {ops}.',
     {'+': 'gets {b} more', '-': 'loses {b}', '*': 'multiplies them by {b}'},
     'How many {items} now?', None),
    ('{name} has {a} {noun}. {pron} {ops}.',
     {'+': 'buys {b}', '-': 'gives away {b}', '*': 'multiplies them by {b}'},
     'How many now?', None),
    ('{name} has {a} {noun}. {pron} {ops}.',
     {'+': 'wins {b}', '-': 'loses {b}', '*': 'multiplies them by {b}'},
     'What is the score?', 'points'),
    ('{name} has {a} {noun}. {pron} {ops}.',
     {'+': 'earns {b}', '-': 'spends {b}', '*': 'multiplies it by {b}'},
     'How much now?', 'dollars'),
    ('{name} thinks of {a}. {pron} {ops}.',
     {'+': 'adds {b}', '-': 'subtracts {b}', '*': 'multiplies by {b}'},
     'What is the result?', ''),
)
_BARE_PHRASES = {'+': 'add {b}', '-': 'subtract {b}', '*': 'multiply by {b}'}

_BOX = '\\boxed{'
_INT = r'(-?\d+)'
_STEP_RE = re.compile(r'^' + _INT + r'([-+*])(\d+)=' + _INT + r'$')


@dataclasses.dataclass(frozen=True)
class ArithmeticConfig:
  """Distribution of arithmetic problems.

  Attributes:
    num_steps: Number of operations in the chain (>= 1).
    max_operand: Largest start value / operand (inclusive).
    min_operand: Smallest start value / operand (inclusive, >= 0).
    ops: Operators to draw from, uniformly; a subset of `('+', '-', '*')`.
    modulus: If set (>= 2), every intermediate result is reduced mod this
      (Python `%`, so results are in `[0, modulus)`) and the question says so.
      If None, plain integers: values may grow large and go negative (operands
      themselves are never negative).
    word_problem: Natural-language templates with names and objects if True,
      the bare "Start at 3. Add 5, ..." form if False.
  """
  num_steps: int = 4
  max_operand: int = 9
  min_operand: int = 1
  ops: tuple[str, ...] = OPS
  modulus: int | None = 10
  word_problem: bool = True

  def __post_init__(self):
    if self.num_steps < 1:
      raise ValueError(f'num_steps must be >= 1, got {self.num_steps}.')
    if not 0 <= self.min_operand <= self.max_operand:
      raise ValueError('Need 0 <= min_operand <= max_operand, got '
                       f'{self.min_operand}, {self.max_operand}.')
    if not self.ops or any(op not in OPS for op in self.ops):
      raise ValueError(f'ops must be a non-empty subset of {OPS}: {self.ops}.')
    if self.modulus is not None and self.modulus < 2:
      raise ValueError(f'modulus must be None or >= 2, got {self.modulus}.')


@dataclasses.dataclass(frozen=True)
class Problem:
  """One problem with its reference solution.

  Attributes:
    question: The prompt text.
    steps: Reference solution steps, e.g. "7+5=2" (mod 10) or "7+5=12".
    answer: The final answer as a string (`str(values[-1])`).
    start: The start value v0.
    ops: The operator of each step.
    operands: The right operand of each step.
    values: The result of each step, v1..vK (so `len(values) == num_steps`).
    modulus: The modulus, or None.
  """
  question: str
  steps: tuple[str, ...]
  answer: str
  start: int
  ops: tuple[str, ...]
  operands: tuple[int, ...]
  values: tuple[int, ...]
  modulus: int | None

  @property
  def num_steps(self) -> int:
    return len(self.ops)

  @property
  def inputs(self) -> tuple[int, ...]:
    """The left operand of each step: v0..v{K-1}."""
    return (self.start,) + self.values[:-1]

  @property
  def solution(self) -> str:
    """Steps and then `\\boxed{answer}`, separated by blank lines."""
    return format_solution(self.steps, self.answer)


@dataclasses.dataclass(frozen=True)
class SolutionCheck:
  """Result of `check_solution`.

  Attributes:
    step_correct: One entry per problem step: whether the i-th step block of
      the text is correct (right input, operator, operand and result).
      Missing steps count as wrong.
    first_wrong_step: Index of the first False in `step_correct`, -1 if none.
    final_answer: Content of the last `\\boxed{...}`, None if there is none.
    answer_correct: Whether `final_answer` equals the problem's answer.
    well_formed: Whether the text is exactly `num_steps` blocks that parse as
      steps (right or wrong) followed by a `\\boxed{...}` block.
  """
  step_correct: tuple[bool, ...]
  first_wrong_step: int
  final_answer: str | None
  answer_correct: bool
  well_formed: bool


def apply_op(a: int, op: str, b: int, modulus: int | None = None) -> int:
  """Returns `a op b`, reduced mod `modulus` if it is set."""
  if op == '+':
    r = a + b
  elif op == '-':
    r = a - b
  elif op == '*':
    r = a * b
  else:
    raise ValueError(f'Unknown op {op!r}.')
  return r % modulus if modulus is not None else r


def format_step(a: int, op: str, b: int, result: int) -> str:
  """Formats one step; `result` is written as given, right or wrong."""
  return f'{a}{op}{b}={result}'


def format_solution(steps: Sequence[str], answer: str) -> str:
  """Joins steps and the boxed answer with blank lines."""
  return '\n\n'.join(list(steps) + [f'{_BOX}{answer}}}'])


def format_prompt(problem: Problem) -> str:
  """The text a model is conditioned on: the question and a newline."""
  return problem.question + '\n'


def _choice(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
  return seq[int(rng.integers(len(seq)))]


def _join_clauses(clauses: Sequence[str]) -> str:
  if len(clauses) == 1:
    return clauses[0]
  return ', '.join(clauses[:-1]) + ', then ' + clauses[-1]


def _question(rng: np.random.Generator, config: ArithmeticConfig, start: int,
              ops: Sequence[str], operands: Sequence[int]) -> str:
  """Renders the question; draws template, name and items from `rng`."""
  if config.word_problem:
    intro, phrases, closing, items = _choice(rng, _TEMPLATES)
    name, pron = _choice(rng, _NAMES)
    if items is None:
      items = _choice(rng, _ITEMS)
  else:
    intro, phrases, closing = 'Start at {a}. {ops}.', _BARE_PHRASES, ''
    name, pron, items = '', '', ''
  clauses = _join_clauses(
      [phrases[op].format(b=b) for op, b in zip(ops, operands)])
  if not config.word_problem:
    clauses = clauses[0].upper() + clauses[1:]
  noun = items[:-1] if start == 1 else items  # All nouns are plain plurals.
  fields = dict(name=name, pron=pron.capitalize(), items=items, noun=noun,
                a=start)
  parts = [intro.format(ops=clauses, **fields), closing.format(**fields)]
  if config.modulus is not None:
    parts.append(f'Answer mod {config.modulus}.')
  return ' '.join(p for p in parts if p)


def generate_problem(rng: np.random.Generator,
                     config: ArithmeticConfig) -> Problem:
  """Draws one problem from `config`'s distribution using `rng`."""
  lo, hi = config.min_operand, config.max_operand
  start = int(rng.integers(lo, hi + 1))
  ops, operands, values, steps = [], [], [], []
  a = start
  for _ in range(config.num_steps):
    op = _choice(rng, config.ops)
    b = int(rng.integers(lo, hi + 1))
    r = apply_op(a, op, b, config.modulus)
    ops.append(op)
    operands.append(b)
    values.append(r)
    steps.append(format_step(a, op, b, r))
    a = r
  question = _question(rng, config, start, ops, operands)
  return Problem(question=question, steps=tuple(steps), answer=str(a),
                 start=start, ops=tuple(ops), operands=tuple(operands),
                 values=tuple(values), modulus=config.modulus)


def generate_dataset(seed: int, n: int,
                     config: ArithmeticConfig) -> list[Problem]:
  """Returns `n` problems, a deterministic function of `seed` and `config`.

  Different seeds give independent draws, which may overlap when the problem
  space is small (e.g. one step, single digits); deduplicate if that matters.
  """
  rng = np.random.default_rng(seed)
  return [generate_problem(rng, config) for _ in range(n)]


def to_jsonl_records(problems: Sequence[Problem]) -> list[dict[str, Any]]:
  """JSON-ready dicts with keys question, solution, answer, steps."""
  return [dict(question=p.question, solution=p.solution, answer=p.answer,
               steps=list(p.steps)) for p in problems]


def split_steps(solution_text: str) -> list[str]:
  """Splits a solution on blank lines; blocks are stripped, empties dropped."""
  blocks = re.split(r'\n[ \t]*\n', solution_text)
  return [b.strip() for b in blocks if b.strip()]


def closing_brace(text: str, i: int) -> int | None:
  """Index of the `}` closing a group whose `{` is just before `text[i]`
  (nested braces matched); None if it is never closed."""
  depth = 1
  for j in range(i, len(text)):
    if text[j] == '{':
      depth += 1
    elif text[j] == '}':
      depth -= 1
      if depth == 0:
        return j
  return None


def extract_boxed(text: str) -> str | None:
  """Content of the last `\\boxed{...}`, with nested braces matched.

  Returns None if there is no box or the last one is not closed (e.g. a
  truncated generation).
  """
  start = text.rfind(_BOX)
  if start < 0:
    return None
  end = closing_brace(text, start + len(_BOX))
  return None if end is None else text[start + len(_BOX):end]


def parse_step(step_text: str) -> tuple[int, str, int, int] | None:
  """Parses a step `a op b=r` into `(a, op, b, r)`; None if malformed.

  Spaces are ignored.
  """
  m = _STEP_RE.match(re.sub(r'\s+', '', step_text))
  if m is None:
    return None
  a, op, b, r = m.groups()
  return int(a), op, int(b), int(r)


def check_step(problem: Problem, step_index: int, step_text: str) -> bool:
  """Whether `step_text` is a correct step `step_index` of `problem`.

  The step must have the correct input (the true previous value), operator
  and operand, and the correct result (reduced mod the problem's modulus). A
  step that is valid arithmetic but starts from a wrong earlier value is
  therefore wrong.
  """
  if not 0 <= step_index < problem.num_steps:
    return False
  parsed = parse_step(step_text)
  if parsed is None:
    return False
  i = step_index
  expected = (problem.inputs[i], problem.ops[i], problem.operands[i],
              problem.values[i])
  return parsed == expected


def _same_answer(predicted: str, answer: str) -> bool:
  p, a = predicted.strip(), answer.strip()
  try:
    return int(p) == int(a)
  except ValueError:
    return p == a


def check_solution(problem: Problem, solution_text: str) -> SolutionCheck:
  """Checks every step and the final answer of a solution text.

  Blocks are split with `split_steps`; if the last block starts with
  `\\boxed{` it is the answer block and the others are steps, in order.
  """
  blocks = split_steps(solution_text)
  has_box_block = bool(blocks) and blocks[-1].startswith(_BOX)
  step_texts = blocks[:-1] if has_box_block else blocks
  correct = tuple(
      i < len(step_texts) and check_step(problem, i, step_texts[i])
      for i in range(problem.num_steps))
  first_wrong = correct.index(False) if False in correct else -1
  final = extract_boxed(solution_text)
  answer_correct = final is not None and _same_answer(final, problem.answer)
  well_formed = (
      has_box_block and final is not None
      and blocks[-1] == f'{_BOX}{final}}}'
      and len(step_texts) == problem.num_steps
      and all(parse_step(s) is not None for s in step_texts))
  return SolutionCheck(step_correct=correct, first_wrong_step=first_wrong,
                       final_answer=final, answer_correct=answer_correct,
                       well_formed=well_formed)


def _phrase_patterns() -> list[tuple[re.Pattern, str]]:
  """(regex of one operation phrase, its operator), longest phrases first."""
  phrases = {(p, op) for _, table, _, _ in _TEMPLATES for op, p in table.items()}
  phrases |= {(p, op) for op, p in _BARE_PHRASES.items()}
  ordered = sorted(phrases, key=lambda x: -len(x[0]))
  return [(re.compile('^' + re.escape(p).replace(r'\{b\}', r'(\d+)') + '$',
                      re.IGNORECASE), op) for p, op in ordered]


_PHRASES = _phrase_patterns()
_START_RE = re.compile(r'(?:^Start at|\bhas|\bthinks of) (\d+)\b')
_MOD_RE = re.compile(r'Answer mod (\d+)\.\s*$')


def parse_question(question: str) -> Problem | None:
  """The problem a `generate_problem` question states, or None.

  Inverts `_question` for both forms (templates and bare): the start value,
  each operation phrase with its operand, and the modulus. The question
  alone determines the chain, so a verifier given only the text (an oracle
  in search) can check steps. Returns None for text no template produces.
  """
  question = question.strip()
  m = _MOD_RE.search(question)
  modulus = int(m.group(1)) if m else None
  start = _START_RE.search(question)
  if start is None:
    return None
  # The operations clause: from after the first sentence to its full stop.
  rest = question[question.find('.', start.end()) + 1:].strip()
  pron = rest.find(' ')
  clause = rest[:rest.find('.')] if '.' in rest else ''
  if question.startswith('Start at'):
    words = clause
  else:  # "She gets 5 more, loses 4, then ...": drop the pronoun.
    words = clause[pron + 1:] if pron > 0 else ''
  parts = re.split(r', then |, ', words)
  ops, operands = [], []
  for part in parts:
    for pattern, op in _PHRASES:
      hit = pattern.match(part.strip())
      if hit:
        ops.append(op)
        operands.append(int(hit.group(1)))
        break
    else:
      return None
  a = int(start.group(1))
  values, steps = [], []
  for op, b in zip(ops, operands):
    r = apply_op(a, op, b, modulus)
    steps.append(format_step(a, op, b, r))
    values.append(r)
    a = r
  return Problem(question=question, steps=tuple(steps), answer=str(a),
                 start=int(start.group(1)), ops=tuple(ops),
                 operands=tuple(operands), values=tuple(values),
                 modulus=modulus)
