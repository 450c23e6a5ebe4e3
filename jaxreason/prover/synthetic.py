"""A synthetic proving domain: statements with known subgoal proofs.

Each `Problem` has an informal statement, a formal one in the checker's
language (variables, hypotheses, goal: Python / sympy expressions) and a
known proof: an informal subgoal sketch ("subtract 4; divide by 3") and the
formal steps the checker verifies one by one ("3*x == 15", "x == 5").

  problems = generate_problems(100, seed=0)
  p = problems[0]
  check_proof(dict(p.variables), p.hypotheses, p.goal, p.steps).proved  # True

Templates (`TEMPLATES`): linear equations, linear inequalities, remainders
(`Mod`), two-variable systems and bracketed equations, over integers with
small coefficients, so that a 0.3M-parameter character model can learn them.

The text forms the generators read and write are defined here too:

  formal  '{x:int} 3*x + 4 == 19 => x == 5'   ('; ' between hypotheses)
  sketch  'subtract 4; divide by 3'
  proof   '3*x == 15 ; x == 5'
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import numpy as np

TEMPLATES = ('linear', 'inequality', 'modular', 'system', 'bracket')
KINDS = ('int', 'real')
HYP_SEP = '; '
STEP_SEP = ' ; '
SKETCH_SEP = '; '


@dataclasses.dataclass(frozen=True)
class Problem:
  """One statement with a known subgoal proof."""

  template: str
  informal: str
  variables: tuple[tuple[str, str], ...]  # ((name, 'int' | 'real'), ...)
  hypotheses: tuple[str, ...]
  goal: str
  sketch: tuple[str, ...]  # Informal subgoals, one per formal step.
  steps: tuple[str, ...]  # Formal claims; the last one is the goal.

  @property
  def formal(self) -> str:
    return format_formal(self.variables, self.hypotheses, self.goal)


# Text forms --------------------------------------------------------------------


def format_formal(variables: Sequence[tuple[str, str]],
                  hypotheses: Sequence[str], goal: str) -> str:
  names = ','.join(f'{n}:{k}' for n, k in variables)
  return '{' + names + '} ' + HYP_SEP.join(hypotheses) + ' => ' + goal


_FORMAL = re.compile(r'^\{([^{}]*)\} (.*) => (.*)$')


def parse_formal(text: str) -> tuple[dict[str, str], list[str], str]:
  """(variables, hypotheses, goal) of '{x:int} HYP; HYP => GOAL'.

  Raises ValueError naming the part that does not parse (generated text is
  often malformed; callers count that as unproved).
  """
  m = _FORMAL.match(text.strip())
  if not m:
    raise ValueError(f'formal statement {text!r}: expected '
                     "'{name:kind,...} HYP; HYP => GOAL'")
  variables = {}
  for item in m.group(1).split(','):
    name, _, kind = item.partition(':')
    if not name.isidentifier() or kind not in KINDS:
      raise ValueError(f'formal statement {text!r}: variable {item!r} is not '
                       f"'name:int' or 'name:real'")
    variables[name] = kind
  hypotheses = [h.strip() for h in m.group(2).split(HYP_SEP.strip())]
  goal = m.group(3).strip()
  if not all(hypotheses) or not goal:
    raise ValueError(f'formal statement {text!r}: empty hypothesis or goal')
  return variables, hypotheses, goal


def format_steps(steps: Sequence[str]) -> str:
  return STEP_SEP.join(steps)


def parse_steps(text: str) -> list[str]:
  """Proof text -> step claims; raises ValueError on an empty step."""
  steps = [s.strip() for s in text.split(STEP_SEP.strip())]
  if not steps or not all(steps):
    raise ValueError(f'proof {text!r}: empty step')
  return steps


def format_sketch(sketch: Sequence[str]) -> str:
  return SKETCH_SEP.join(sketch)


# Templates ----------------------------------------------------------------------


def _signed(b: int) -> str:
  return f'+ {b}' if b >= 0 else f'- {-b}'


def _linear(rng: np.random.Generator, max_coef: int) -> Problem:
  a = int(rng.integers(2, max_coef + 1))
  x = int(rng.integers(1, 10))
  b = int(rng.integers(1, 10)) * (1 if rng.random() < 0.5 else -1)
  c = a * x + b
  move = f'subtract {b}' if b > 0 else f'add {-b}'
  return Problem(
      'linear', f'If {a}x {_signed(b)} = {c}, show that x = {x}.',
      (('x', 'int'),), (f'{a}*x {_signed(b)} == {c}',), f'x == {x}',
      (move, f'divide by {a}'), (f'{a}*x == {c - b}', f'x == {x}'))


def _inequality(rng: np.random.Generator, max_coef: int) -> Problem:
  a = int(rng.integers(2, max_coef + 1))
  q = int(rng.integers(1, 10))
  b = int(rng.integers(1, 10))
  op = '>' if rng.random() < 0.5 else '<'
  c = a * q + b
  word = 'greater' if op == '>' else 'less'
  return Problem(
      'inequality',
      f'If {a}x + {b} is {word} than {c}, show that x is {word} than {q}.',
      (('x', 'int'),), (f'{a}*x + {b} {op} {c}',), f'x {op} {q}',
      (f'subtract {b}', f'divide by {a}'), (f'{a}*x {op} {a * q}',
                                            f'x {op} {q}'))


def _modular(rng: np.random.Generator, max_coef: int) -> Problem:
  m = int(rng.integers(3, 8))
  r = int(rng.integers(0, m))
  a = int(rng.integers(2, max_coef + 1))
  b = int(rng.integers(1, 10))
  s = (a * r + b) % m
  return Problem(
      'modular',
      f'If n leaves remainder {r} when divided by {m}, show that {a}n + {b} '
      f'leaves remainder {s}.',
      (('n', 'int'),), (f'Mod(n, {m}) == {r}',), f'Mod({a}*n + {b}, {m}) == {s}',
      (f'multiply by {a}', f'add {b}'),
      (f'Mod({a}*n, {m}) == {(a * r) % m}', f'Mod({a}*n + {b}, {m}) == {s}'))


def _system(rng: np.random.Generator, max_coef: int) -> Problem:
  del max_coef
  x = int(rng.integers(2, 13))
  y = int(rng.integers(1, x))
  s, d = x + y, x - y
  hyps = (f'x + y == {s}', f'x - y == {d}')
  informal = f'If x + y = {s} and x - y = {d}, show that '
  if rng.random() < 0.5:
    return Problem('system', informal + f'x = {x}.',
                   (('x', 'int'), ('y', 'int')), hyps, f'x == {x}',
                   ('add the equations', 'divide by 2'),
                   (f'2*x == {s + d}', f'x == {x}'))
  return Problem('system', informal + f'y = {y}.',
                 (('x', 'int'), ('y', 'int')), hyps, f'y == {y}',
                 ('subtract the equations', 'divide by 2'),
                 (f'2*y == {s - d}', f'y == {y}'))


def _bracket(rng: np.random.Generator, max_coef: int) -> Problem:
  a = int(rng.integers(2, max_coef + 1))
  x = int(rng.integers(1, 10))
  b = int(rng.integers(1, 10))
  c = a * (x + b)
  return Problem(
      'bracket', f'If {a}(x + {b}) = {c}, show that x = {x}.',
      (('x', 'int'),), (f'{a}*(x + {b}) == {c}',), f'x == {x}',
      (f'divide by {a}', f'subtract {b}'), (f'x + {b} == {x + b}', f'x == {x}'))


_MAKERS = {'linear': _linear, 'inequality': _inequality, 'modular': _modular,
           'system': _system, 'bracket': _bracket}


def generate_problems(num: int, *, seed: int,
                      templates: Sequence[str] = TEMPLATES,
                      max_coef: int = 5,
                      exclude: Sequence[Problem] = ()) -> list[Problem]:
  """`num` distinct problems, templates in turn, none of them in `exclude`.

  max_coef: the largest multiplier a (at least 2). Raises ValueError for an
  unknown template or when the templates cannot give `num` distinct problems.
  """
  unknown = sorted(set(templates) - set(TEMPLATES))
  if unknown or not templates:
    raise ValueError(f'templates {list(templates)}: unknown {unknown}; '
                     f'expected some of {TEMPLATES}')
  if max_coef < 2:
    raise ValueError(f'max_coef={max_coef} must be at least 2')
  rng = np.random.default_rng(seed)
  seen = {p.formal for p in exclude}
  out = []
  tries = 0
  while len(out) < num:
    tries += 1
    if tries > 50 * num + 1000:
      raise ValueError(f'could not draw {num} distinct problems from '
                       f'templates {list(templates)} with max_coef={max_coef}')
    p = _MAKERS[templates[len(out) % len(templates)]](rng, max_coef)
    if p.formal not in seen:
      seen.add(p.formal)
      out.append(p)
  return out


def corrupt_step(problem: Problem, index: int) -> tuple[str, ...]:
  """The proof with step `index` made false: an equation's right-hand side
  off by one, an inequality reversed (never entailed by the hypotheses)."""
  steps = list(problem.steps)
  m = re.match(r'^(.*\S)\s*(==|<|>)\s*(-?\d+)$', steps[index])
  if not m:
    raise ValueError(f'step {steps[index]!r} does not end in a number')
  lhs, op, rhs = m.group(1), m.group(2), int(m.group(3))
  if op == '==':
    steps[index] = f'{lhs} == {rhs + 1}'
  else:
    steps[index] = f"{lhs} {'<' if op == '>' else '>'} {rhs}"
  return tuple(steps)
