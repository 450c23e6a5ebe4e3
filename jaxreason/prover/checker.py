r"""Checks subgoal proofs: every step must follow from what came before it.

  report = check_proof({'x': 'int'}, ['x + 2 == 5'], 'x**2 == 9',
                       ['x == 3'])
  report.proved        # True
  check_proof({'x': 'int'}, ['x + 2 == 5'], 'x**2 == 9', ['x == 4'])
  # -> proved False, failed_step 0, reason 'step 0 (x == 4) does not follow
  #    ...: counterexample x = 3'

A statement is `variables` (name -> 'int' or 'real'), hypotheses and a
goal; a proof is an ordered list of claims. Claim i is checked from the
hypotheses and claims 0..i-1, as Isabelle's sledgehammer closes each `have`
of a SubgoalXL proof; then the goal is checked from the hypotheses and all
the claims. The report names the first claim that does not follow
(`failed_step`), or `len(steps)` when they all hold but the goal does not
follow from them.

Expressions are Python syntax over the declared names: + - * / // % **,
comparisons (chains allowed), and / or / not, integer and decimal
constants, and the functions Mod, Abs, Min, Max, floor, ceiling, Eq, Ne,
And, Or, Not, Implies. `/` is exact (rational) division, `//` is
floor(a / b), `%` and Mod(a, b) follow Python for a positive divisor.
Nothing is evaluated: the text is parsed with `ast`, checked against that
whitelist (anything else is an error naming the construct), and built into
a sympy expression, then translated to Z3.

Backends: Z3 decides each entailment (hypotheses + earlier claims and not
claim unsatisfiable) within `timeout_s`. When Z3 answers unknown (non-linear
real arithmetic, for example) and the claim is an equation, sympy tries to
simplify lhs - rhs to 0 (an identity holds whatever the hypotheses), in a
separate process killed at the deadline. Anything else that is not proved
in time is reported as unproved: a timeout never accepts a claim.
"""

from __future__ import annotations

import ast
import dataclasses
import fractions
import multiprocessing
import time
from typing import Mapping, Sequence

import sympy
import z3

TYPES = ('int', 'real')
FUNCTIONS = {
    'Mod': sympy.Mod, 'Abs': sympy.Abs, 'Min': sympy.Min, 'Max': sympy.Max,
    'floor': sympy.floor, 'ceiling': sympy.ceiling, 'Eq': sympy.Eq,
    'Ne': sympy.Ne, 'And': sympy.And, 'Or': sympy.Or, 'Not': sympy.Not,
    'Implies': sympy.Implies,
}
_ARITY = {'Mod': 2, 'Abs': 1, 'floor': 1, 'ceiling': 1, 'Eq': 2, 'Ne': 2,
          'Not': 1, 'Implies': 2}


class ExpressionError(ValueError):
  """An expression outside the language (the message names the construct)."""


@dataclasses.dataclass(frozen=True)
class StepResult:
  index: int  # len(steps) for the goal.
  claim: str
  status: str  # entailed | not_entailed | timeout | error
  backend: str  # z3 | sympy | parse
  detail: str = ''
  seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class ProofReport:
  """The verdict on one proof (see module docstring)."""
  proved: bool
  failed_step: int | None
  reason: str
  steps: tuple[StepResult, ...] = ()
  hypotheses_consistent: bool | None = None  # None: Z3 could not decide.


# Parsing ---------------------------------------------------------------------

_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b,
           ast.FloorDiv: lambda a, b: sympy.floor(a / b),
           ast.Mod: sympy.Mod, ast.Pow: lambda a, b: a ** b}
_COMPARE = {ast.Eq: sympy.Eq, ast.NotEq: sympy.Ne, ast.Lt: sympy.Lt,
            ast.LtE: sympy.Le, ast.Gt: sympy.Gt, ast.GtE: sympy.Ge}


def symbols(variables: Mapping[str, str]) -> dict[str, sympy.Symbol]:
  out = {}
  for name, kind in variables.items():
    if kind not in TYPES:
      raise ExpressionError(f'variable {name!r} has type {kind!r}: expected '
                            f'one of {TYPES}')
    if not name.isidentifier() or name in FUNCTIONS:
      raise ExpressionError(f'{name!r} cannot be a variable name')
    out[name] = sympy.Symbol(name, integer=kind == 'int', real=True)
  return out


def parse(text: str, names: Mapping[str, sympy.Symbol]) -> sympy.Basic:
  """`text` as a sympy expression over `names`; ExpressionError otherwise."""
  try:
    tree = ast.parse(text.strip(), mode='eval')
  except SyntaxError as e:
    raise ExpressionError(f'cannot parse {text!r}: {e.msg}') from None
  return _build(tree.body, names, text)


def _build(node: ast.AST, names, text: str):
  rec = lambda n: _build(n, names, text)
  if isinstance(node, ast.Constant):
    if isinstance(node.value, bool):
      return sympy.true if node.value else sympy.false
    if isinstance(node.value, int):
      return sympy.Integer(node.value)
    if isinstance(node.value, float):
      return sympy.Rational(fractions.Fraction(repr(node.value)))
    raise ExpressionError(f'constant {node.value!r} in {text!r}: only '
                          'numbers and True / False')
  if isinstance(node, ast.Name):
    if node.id in names:
      return names[node.id]
    raise ExpressionError(f'unknown name {node.id!r} in {text!r}: declare it '
                          'in variables')
  if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
    return _BINOPS[type(node.op)](rec(node.left), rec(node.right))
  if isinstance(node, ast.UnaryOp):
    if isinstance(node.op, ast.USub):
      return -rec(node.operand)
    if isinstance(node.op, ast.UAdd):
      return rec(node.operand)
    if isinstance(node.op, ast.Not):
      return sympy.Not(rec(node.operand))
  if isinstance(node, ast.BoolOp):
    op = sympy.And if isinstance(node.op, ast.And) else sympy.Or
    return op(*[rec(v) for v in node.values])
  if isinstance(node, ast.Compare) and all(type(o) in _COMPARE
                                           for o in node.ops):
    terms = [rec(node.left)] + [rec(c) for c in node.comparators]
    parts = [_COMPARE[type(o)](a, b, evaluate=False)
             for o, a, b in zip(node.ops, terms, terms[1:])]
    return parts[0] if len(parts) == 1 else sympy.And(*parts)
  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
    name = node.func.id
    if name not in FUNCTIONS:
      raise ExpressionError(f'unknown function {name!r} in {text!r}: '
                            f'expected one of {sorted(FUNCTIONS)}')
    if node.keywords or (name in _ARITY and len(node.args) != _ARITY[name]):
      raise ExpressionError(f'{name} takes {_ARITY.get(name, "some")} '
                            f'positional arguments, in {text!r}')
    return FUNCTIONS[name](*[rec(a) for a in node.args])
  what = type(node).__name__
  if isinstance(node, (ast.BinOp, ast.UnaryOp)):
    what += f' {type(node.op).__name__}'
  raise ExpressionError(f'unsupported construct {what} '
                        f'({ast.unparse(node)!r}) in {text!r}')


# Sympy -> Z3 -----------------------------------------------------------------


class _Z3:
  """Translates sympy expressions over declared symbols to Z3 terms."""

  def __init__(self, variables: Mapping[str, str]):
    self.vars = {n: (z3.Int(n) if k == 'int' else z3.Real(n))
                 for n, k in variables.items()}

  def __call__(self, e):
    if isinstance(e, sympy.Symbol):
      return self.vars[e.name]
    if e is sympy.true or e is sympy.false:
      return z3.BoolVal(bool(e))
    if isinstance(e, sympy.Integer):
      return z3.IntVal(int(e))
    if isinstance(e, sympy.Rational):
      return z3.RealVal(f'{e.p}/{e.q}')
    if isinstance(e, sympy.Add):
      return z3.Sum(*[self(a) for a in e.args])
    if isinstance(e, sympy.Mul):
      return z3.Product(*[self(a) for a in e.args])
    if isinstance(e, sympy.Pow):
      base, exp = e.args
      if isinstance(exp, sympy.Integer):
        k = int(exp)
        if k == 0:
          return z3.IntVal(1)
        power = z3.Product(*[self(base)] * abs(k)) if abs(k) > 1 else \
            self(base)
        return power if k > 0 else 1 / z3.ToReal(power) if z3.is_int(
            power) else 1 / power
      return self(base) ** self(exp)
    if isinstance(e, sympy.Mod):
      a, b = self(e.args[0]), self(e.args[1])
      if not (z3.is_int(a) and z3.is_int(b)):
        raise ExpressionError(f'Mod of non-integers: {e}')
      return a % b
    if isinstance(e, sympy.Abs):
      a = self(e.args[0])
      return z3.If(a >= 0, a, -a)
    if isinstance(e, sympy.floor):
      return z3.ToInt(self._real(self(e.args[0])))
    if isinstance(e, sympy.ceiling):
      return -z3.ToInt(-self._real(self(e.args[0])))
    if isinstance(e, (sympy.Min, sympy.Max)):
      terms = [self(a) for a in e.args]
      out = terms[0]
      for t in terms[1:]:
        out = z3.If(t < out, t, out) if isinstance(e, sympy.Min) else \
            z3.If(t > out, t, out)
      return out
    rel = {sympy.Eq: lambda a, b: a == b, sympy.Ne: lambda a, b: a != b,
           sympy.StrictLessThan: lambda a, b: a < b,
           sympy.LessThan: lambda a, b: a <= b,
           sympy.StrictGreaterThan: lambda a, b: a > b,
           sympy.GreaterThan: lambda a, b: a >= b}
    for cls, fn in rel.items():
      if isinstance(e, cls):
        return fn(self(e.args[0]), self(e.args[1]))
    if isinstance(e, sympy.And):
      return z3.And(*[self(a) for a in e.args])
    if isinstance(e, sympy.Or):
      return z3.Or(*[self(a) for a in e.args])
    if isinstance(e, sympy.Not):
      return z3.Not(self(e.args[0]))
    if isinstance(e, sympy.Implies):
      return z3.Implies(self(e.args[0]), self(e.args[1]))
    raise ExpressionError(f'no Z3 translation for {type(e).__name__}: {e}')

  @staticmethod
  def _real(t):
    return z3.ToReal(t) if z3.is_int(t) else t

  def boolean(self, e, text: str):
    term = self(e)
    if not z3.is_bool(term):
      raise ExpressionError(f'{text!r} is a number, not a claim (write a '
                            'comparison such as == or <)')
    return term


# Sympy identities in a process of their own ----------------------------------


def _identity_worker(lhs: str, rhs: str, queue) -> None:
  queue.put(sympy.simplify(sympy.sympify(lhs) - sympy.sympify(rhs)) == 0)


def sympy_identity(claim: sympy.Basic, timeout_s: float) -> bool | None:
  """True if `claim` is an equation whose sides simplify to the same thing
  (for every value); False if not shown; None at the deadline."""
  if not isinstance(claim, sympy.Eq):
    return False
  ctx = multiprocessing.get_context('spawn')
  queue = ctx.Queue()
  proc = ctx.Process(target=_identity_worker, daemon=True,
                     args=(sympy.srepr(claim.lhs), sympy.srepr(claim.rhs),
                           queue))
  proc.start()
  proc.join(timeout_s)
  if proc.is_alive():
    proc.kill()
    proc.join()
    return None
  return bool(queue.get()) if not queue.empty() else False


# Checking --------------------------------------------------------------------


def _model_text(model: z3.ModelRef) -> str:
  return ', '.join(f'{d.name()} = {model[d]}'
                   for d in sorted(model.decls(), key=lambda d: d.name()))


def entails(premises: Sequence[z3.BoolRef], claim: z3.BoolRef,
            timeout_s: float) -> tuple[str, str]:
  """('entailed' | 'not_entailed' | 'timeout', detail) by Z3."""
  solver = z3.Solver()
  solver.set('timeout', max(1, int(timeout_s * 1000)))
  solver.add(*premises)
  solver.add(z3.Not(claim))
  result = solver.check()
  if result == z3.unsat:
    return 'entailed', ''
  if result == z3.sat:
    return 'not_entailed', 'counterexample ' + _model_text(solver.model())
  return 'timeout', f'Z3: {solver.reason_unknown()}'


def check_proof(variables: Mapping[str, str], hypotheses: Sequence[str],
                goal: str, steps: Sequence[str], *,
                timeout_s: float = 5.0) -> ProofReport:
  """Checks each step from the hypotheses and earlier steps, then the goal.

  Args:
    variables: name -> 'int' or 'real'.
    hypotheses, goal: the statement (strings, see module docstring).
    steps: the subgoal claims in order (empty: the prover alone).
    timeout_s: per claim, for Z3 and again for the sympy fallback.

  Returns:
    A ProofReport. A step that does not parse fails at its index.

  Raises:
    ExpressionError: when `variables`, a hypothesis or the goal is outside
      the language (the statement itself is bad input).
  """
  names = symbols(variables)
  to_z3 = _Z3(variables)
  premises = [to_z3.boolean(parse(h, names), h) for h in hypotheses]
  goal_expr = parse(goal, names)
  goal_z3 = to_z3.boolean(goal_expr, goal)
  consistent = _consistent(premises, timeout_s)
  results = []
  claims = list(steps) + [goal]
  for i, text in enumerate(claims):
    start = time.time()
    label = 'goal' if i == len(steps) else f'step {i}'
    try:
      expr = goal_expr if i == len(steps) else parse(text, names)
      term = goal_z3 if i == len(steps) else to_z3.boolean(expr, text)
    except ExpressionError as e:
      results.append(StepResult(i, text, 'error', 'parse', str(e)))
      return ProofReport(False, i, f'{label} ({text}): {e}', tuple(results),
                         consistent)
    status, detail = entails(premises, term, timeout_s)
    backend = 'z3'
    if status == 'timeout':
      same = sympy_identity(expr, timeout_s)
      if same:
        status, backend, detail = 'entailed', 'sympy', 'identity'
      elif same is None:
        detail += '; sympy: timeout'
    results.append(StepResult(i, text, status, backend, detail,
                              time.time() - start))
    if status != 'entailed':
      why = {'not_entailed': 'does not follow from the hypotheses and the '
                             'earlier steps',
             'timeout': 'was not proved in time (never accepted)'}[status]
      if i == len(steps) and steps:
        why = 'does not follow from the hypotheses and the steps' \
            if status == 'not_entailed' else why
      return ProofReport(False, i, f'{label} ({text}) {why}: {detail}'
                         .rstrip(': '), tuple(results), consistent)
    premises.append(term)
  return ProofReport(True, None, 'every step and the goal follow',
                     tuple(results), consistent)


def _consistent(premises, timeout_s: float) -> bool | None:
  solver = z3.Solver()
  solver.set('timeout', max(1, int(timeout_s * 1000)))
  solver.add(*premises)
  result = solver.check()
  return None if result == z3.unknown else result == z3.sat
