"""SymPy comparison of answer atoms (math-verify); runs in worker processes.

Nothing here is called in the caller's process: `grader.answers_match` sends
`symbolic_match_job` to a `timeout_pool.TimeoutPool` worker, which enforces a
hard timeout by killing the process. Inside the worker a soft SIGALRM timer
(legal there: jobs run in the worker's main thread) ends most slow jobs a
little earlier so the worker can be reused.
"""

from __future__ import annotations

import cmath
import logging as py_logging
import signal

from jaxreason.rewards import answer_match


class _SoftTimeout(BaseException):
  """Raised by SIGALRM; a BaseException so `except Exception` can't eat it."""


def init_worker() -> None:
  """Imports SymPy / math-verify once and silences their warnings."""
  py_logging.getLogger('math_verify').setLevel(py_logging.ERROR)
  py_logging.getLogger('latex2sympy2_extended').setLevel(py_logging.ERROR)
  _parse('1+1')


def _parse(s: str) -> list:
  # pylint: disable=g-import-not-at-top
  from math_verify import ExprExtractionConfig
  from math_verify import LatexExtractionConfig
  from math_verify import parse
  # pylint: enable=g-import-not-at-top
  return parse('$' + s + '$',
               extraction_config=[LatexExtractionConfig(),
                                  ExprExtractionConfig()],
               parsing_timeout=None)


def _exprs(parsed: list) -> list:
  import sympy  # pylint: disable=g-import-not-at-top
  return [x for x in parsed if isinstance(x, (sympy.Basic, sympy.MatrixBase))]


def _numeric(expr) -> complex | None:
  """The value of a constant expression (e.g. `\\sqrt2/2`, `2\\pi`), or None."""
  import sympy  # pylint: disable=g-import-not-at-top
  if not isinstance(expr, sympy.Expr) or expr.free_symbols:
    return None
  try:
    v = complex(expr.evalf(30))
  except (TypeError, ValueError, ArithmeticError):
    return None
  return v if cmath.isfinite(v) else None


def _both_rational(a, b) -> bool:
  """Whether both expressions evaluate to exact rationals (and no percent)."""
  import sympy  # pylint: disable=g-import-not-at-top
  if not all(isinstance(x, sympy.Expr) and not x.free_symbols for x in (a, b)):
    return False
  return all(x.doit().is_Rational for x in (a, b))


def _close(a: complex, b: complex) -> bool:
  scale = max(abs(a), abs(b))
  return abs(a - b) <= max(answer_match.ABS_TOL, answer_match.REL_TOL * scale)


def _same_equation(pred_diff: str, gold_diff: str) -> bool:
  """(lhs - rhs) of two equations agree up to a non-zero constant factor."""
  import sympy  # pylint: disable=g-import-not-at-top
  for a in _exprs(_parse(pred_diff)):
    for b in _exprs(_parse(gold_diff)):
      if not isinstance(a, sympy.Expr) or not isinstance(b, sympy.Expr):
        continue
      if sympy.simplify(b) == 0:
        if sympy.simplify(a) == 0:
          return True
        continue
      ratio = sympy.simplify(a / b)
      if not ratio.free_symbols and ratio.is_number and ratio != 0:
        return True
  return False


def symbolic_leaf(pred: str, gold: str, mode: str = 'value') -> bool:
  """`answer_match.fast_leaf`, then SymPy: numeric value or `verify`."""
  fast = answer_match.fast_leaf(pred, gold, mode)
  if fast is not None:
    return fast
  from math_verify import verify  # pylint: disable=g-import-not-at-top
  try:
    if mode == 'equation':
      return _same_equation(pred, gold)
    p, p_scales = answer_match.percent_scales(pred)
    g, g_scales = answer_match.percent_scales(gold)
    p_parsed, g_parsed = _parse(p), _parse(g)
    for a in _exprs(p_parsed):
      for b in _exprs(g_parsed):
        if _both_rational(a, b):  # Exact: no tolerance for 10^100 + 1.
          if a.doit() == b.doit():
            return True
          continue
        va, vb = _numeric(a), _numeric(b)
        if va is not None and vb is not None and any(
            _close(va * float(x), vb * float(y))
            for x in p_scales for y in g_scales):
          return True
    return bool(verify(g_parsed, p_parsed, timeout_seconds=None,
                       allow_set_relation_comp=True))
  except Exception:  # pylint: disable=broad-except
    return False


def symbolic_match_job(pred: str, gold: str, soft_timeout: float) -> bool:
  """`answer_match.match` with SymPy leaves, under a SIGALRM soft timeout."""

  def on_alarm(signum, frame):
    del signum, frame
    raise _SoftTimeout()

  previous = signal.signal(signal.SIGALRM, on_alarm)
  signal.setitimer(signal.ITIMER_REAL, max(soft_timeout, 1e-3))
  try:
    return answer_match.match(pred, gold, symbolic_leaf) is True
  except _SoftTimeout:
    return False
  finally:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)
