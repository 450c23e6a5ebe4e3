"""Answer normalisation and structure-aware matching, without SymPy.

`match(pred, gold, leaf)` compares two normalised answers. It splits
structures (tuples, intervals, sets, unions, matrices, comma lists, `a \\pm b`)
and equations, and compares the atoms with `leaf`. `fast_leaf` decides what
string normalisation and exact/approximate number comparison can decide and
returns None ("unknown") otherwise; the grader then reruns `match` in a worker
process with a SymPy leaf (see `symbolic.py`).

Rules (each one general; none is tied to a data set item):
  * Numbers: integers and fractions (`3`, `025`, `\\frac{1}{2}`, `1/2`, the
    mixed number `1\\frac{4}{5}`) compare exactly, so two integers never
    match by tolerance (11111111101 != 11111111100). If either side is a
    decimal or in scientific notation, they compare with
    |a - b| <= max(ABS_TOL, REL_TOL * max(|a|, |b|)), REL_TOL = 1e-4 and
    ABS_TOL = 1e-8: `0.333333` matches 1/3, `204.01` matches 204, `3.14`
    does not match pi. SymPy-evaluated constants (`\\sqrt2/2`, `2\\pi`) use
    the same tolerance, and exact rationals (`10^{100}`) compare exactly.
    `1,000` / `10,\\!080` (groups of three digits) is one number, not a list.
  * Percent: a side written with `%` may mean x or x/100, so `50\\%` matches
    both `50` and `0.5` (graders differ here; rejecting either would mark
    right answers wrong). Without a `%` on either side no scaling is tried,
    so `50` does not match `0.5`.
  * Units and decorations are dropped: `\\text{ cm}^2`, `\\mbox{ inches}`,
    trailing words after a number ("18 dollars"), `^\\circ`, `\\$`, `\\left`,
    `\\right`, TeX spacing, `\\boxed{}`; `\\dfrac`/`\\tfrac` -> `\\frac`,
    `\\frac12` -> `\\frac{1}{2}`. A whole-answer `\\text{Evelyn}` keeps its
    words, which compare case-insensitively.
  * Tuples/points and intervals compare in order and need the same brackets
    (`(3,4]` != `(3,4)`); sets, bare comma lists (all solutions: `1,-2`),
    `a \\pm b` (two solutions) and unions compare as multisets. A bare list
    matches a parenthesised tuple in order; a row/column matrix matches a
    tuple; matrices need the same shape.
  * Equations: `x=2` matches `2` when one side is a lone variable (`x`, `y_1`,
    `f(x)`, `\\theta`, `AB`), and `y=2x+1` matches `2x+1=y`; two general
    equations match when (lhs - rhs) agree up to a non-zero constant factor
    (SymPy); an equation without a lone-variable side never matches a bare
    value. A chain `x = 2+3 = 5` is read as `x = 5`.
  * Multiple choice: a gold `(C)` / `\\text{(C)}` / `C` matches `C`, `(c)`,
    `\\textbf{(C)}`, or `(C) 12`.
"""

from __future__ import annotations

import fractions
import math
import re
from typing import Callable

# Tri-state result: True / False decided, None = needs symbolic comparison.
Tri = bool | None
# leaf(pred, gold, mode) with mode 'value' or 'equation' (pred, gold are then
# `lhs-(rhs)` differences that must agree up to a constant factor).
Leaf = Callable[[str, str, str], Tri]

REL_TOL = 1e-4
ABS_TOL = 1e-8
_ROW = '\x00'  # Stands for a TeX row break while normalising.

_TEXT_CMDS = ('mbox', 'textbf', 'textrm', 'textit', 'textup', 'textnormal',
              'texttt', 'mathrm', 'mathbf', 'mathit', 'emph', 'textsf')
_REPLACEMENTS = (('\u2212', '-'), ('\u00d7', r'\times'), ('\u00f7', r'\div'),
                 ('\u03c0', r'\pi'), ('\u221e', r'\infty'), ('\u00b0', ''),
                 (r'\dfrac', r'\frac'), (r'\tfrac', r'\frac'),
                 (r'\cfrac', r'\frac'), ('{,}', ','), (r'\%', '%'),
                 (r'\$', ''), ('$', ''), (r'\displaystyle', ''),
                 (r'\textstyle', ''), (r'\(', ''), (r'\)', ''),
                 (r'\degree', ''), (r'\infinity', r'\infty'),
                 (r'\lbrace', r'\{'), (r'\rbrace', r'\}'),
                 (r'\varnothing', r'\emptyset'), (r'\{\}', r'\emptyset'))


def close_brace(s: str, i: int) -> int:
  """Index of the `}` closing the `{` at s[i] (skips `\\{`, `\\}`), or -1."""
  depth = 0
  j = i
  while j < len(s):
    c = s[j]
    if c == '\\':
      j += 2
      continue
    if c == '{':
      depth += 1
    elif c == '}':
      depth -= 1
      if depth == 0:
        return j
    j += 1
  return -1


def _unwrap_cmd(s: str, names: tuple[str, ...], keep: Callable[[str], str]
                ) -> str:
  """Replaces every `\\name{X}` by keep(X) (brace-matched)."""
  pattern = re.compile(r'\\(?:%s)\s*(?=\{)' % '|'.join(names))
  while True:
    m = pattern.search(s)
    if not m:
      return s
    end = close_brace(s, m.end())
    if end < 0:
      return s[:m.start()] + s[m.end():]
    s = s[:m.start()] + keep(s[m.end() + 1:end]) + s[end + 1:]


def _arg(s: str, i: int) -> tuple[str, int] | None:
  """A TeX argument at s[i:] (after spaces): `{...}` or one char."""
  while i < len(s) and s[i] == ' ':
    i += 1
  if i >= len(s):
    return None
  if s[i] == '{':
    end = close_brace(s, i)
    return None if end < 0 else (s[i + 1:end], end + 1)
  if s[i] == '\\':
    m = re.match(r'\\[a-zA-Z]+', s[i:])
    if m:
      return m.group(), i + m.end()
  return s[i], i + 1


def _brace_args(s: str, cmd: str, nargs: int) -> str:
  """Rewrites `\\frac12`, `\\frac 1{2}` ... as `\\frac{1}{2}`."""
  out, i = [], 0
  pattern = re.compile(re.escape(cmd) + r'(?![a-zA-Z])')
  while True:
    m = pattern.search(s, i)
    if not m:
      out.append(s[i:])
      return ''.join(out)
    out.append(s[i:m.end()])
    j = m.end()
    if cmd == r'\sqrt' and j < len(s) and s[j] == '[':  # \sqrt[3]{x}
      k = s.find(']', j)
      if k > 0:
        out.append(s[j:k + 1])
        j = k + 1
    for _ in range(nargs):
      a = _arg(s, j)
      if a is None:
        break
      out.append('{' + a[0] + '}')
      j = a[1]
    i = j


def _drop_text(s: str) -> str:
  """`\\text{...}`: whole answer -> its content; units next to math -> gone."""
  s = re.sub(r'\\text\{\s*(?:and|or|,)\s*\}', ',', s)
  m = re.fullmatch(r'\\text\{(.*)\}', s.strip())
  if m and close_brace(s.strip(), 5) == len(s.strip()) - 1:
    return m.group(1).strip()
  unit = re.compile(r'\\text\{[\sa-zA-Z.]*\}(?:\s*\^\s*\{?\d\}?)?')
  stripped = unit.sub('', s)
  if stripped.strip():
    s = stripped
  return _unwrap_cmd(s, ('text',), lambda x: x)


def normalize(s: str) -> str:
  """Canonical string form of an answer (see the module docstring)."""
  s = s.strip().replace('\\\\', _ROW)  # Protect matrix row breaks.
  s = _unwrap_cmd(s, ('boxed', 'fbox', 'framebox'), lambda x: x)
  for a, b in _REPLACEMENTS:
    s = s.replace(a, b)
  s = re.sub(r'\\(?:left|right)\.', '', s)
  s = re.sub(r'\\(?:left|right|[bB]igg?[lrm]?)(?![a-zA-Z])', '', s)
  s = re.sub(r'\\!|\\(?=\d)', '', s)  # Also a stray escape as in `\15`.
  s = re.sub(r'\\[,;: ]|\\q?quad(?![a-zA-Z])|~', ' ', s)
  s = re.sub(r'\^\s*\{?\s*\\circ\s*\}?|\\circ(?![a-zA-Z])', '', s)
  s = _unwrap_cmd(s, _TEXT_CMDS, lambda x: r'\text{' + x + '}')
  s = _drop_text(s)
  s = re.sub(r'\s+(?:and|or)\s+', ',', s)
  # Trailing unit words after a number: "18 dollars", "6 square cm^2".
  s = re.sub(r'^(.*[\d}])\s+[a-zA-Z]{2,}(?:\s+[a-zA-Z]+)*\.?'
             r'(?:\^\{?\d\}?)?$', r'\1', s.strip())
  s = re.sub(r'^[a-zA-Z]\s*\\in\s*', '', s)
  s = re.sub(r'\s+', ' ', s).strip()
  s = re.sub(r'(?<![a-zA-Z]) | (?![a-zA-Z])', '', s)
  s = _brace_args(s, r'\frac', 2)
  s = _brace_args(s, r'\sqrt', 1)
  s = re.sub(r'([\^_])([a-zA-Z0-9])', r'\1{\2}', s)
  s = s.rstrip('.,;').lstrip('+')
  while len(s) > 1 and s[0] == '{' and close_brace(s, 0) == len(s) - 1:
    s = s[1:-1]
  while (len(s) > 2 and s[0] == '(' and _close_bracket(s, 0) == len(s) - 1
         and len(split_top(s[1:-1], ',')) == 1 and ')' not in s[:-1]):
    s = s[1:-1]  # (113) -> 113, but not (a+5)(b+2) or (1,2).
  return s.replace(_ROW, '\\\\')


_OPEN, _CLOSE = '([{', ')]}'


def _close_bracket(s: str, i: int) -> int:
  """Index closing the bracket at s[i] (any of ([{ matches any of )]})."""
  depth = 0
  for j in range(i, len(s)):
    if s[j] in _OPEN:
      depth += 1
    elif s[j] in _CLOSE:
      depth -= 1
      if depth == 0:
        return j
  return -1


def split_top(s: str, sep: str) -> list[str]:
  """Splits at `sep` outside brackets/braces (`\\{ \\}` count as brackets)."""
  parts, depth, start, i = [], 0, 0, 0
  while i < len(s):
    if s.startswith(r'\begin', i) or s.startswith(r'\end', i):
      depth += 1 if s.startswith(r'\begin', i) else -1
    c = s[i]
    if c in _OPEN:
      depth += 1
    elif c in _CLOSE:
      depth -= 1
    elif depth == 0 and s.startswith(sep, i):
      if sep == '=' and (i > 0 and s[i - 1] in '<>!'):
        i += 1
        continue
      parts.append(s[start:i])
      i += len(sep)
      start = i
      continue
    i += 1
  parts.append(s[start:])
  return parts


# ----------------------------------------------------------------- numbers

_DEC = r'(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+'
_SCI = re.compile(r'(%s)(?:e|E|\\times10\^\{)([+-]?\d+)\}?' % _DEC)
Number = tuple[fractions.Fraction, bool]  # (value, exact)


def parse_number(s: str) -> Number | None:
  """Parses a plain number, fraction, mixed number or a*10^k; else None."""
  sign = 1
  while s[:1] in ('-', '+'):
    sign, s = (-sign if s[0] == '-' else sign), s[1:]
  if not s or len(s) > 60:
    return None
  if re.fullmatch(_DEC, s):
    return sign * fractions.Fraction(s.replace(',', '')), '.' not in s
  m = _SCI.fullmatch(s)
  if m:
    v = fractions.Fraction(m.group(1).replace(',', '')) * (
        fractions.Fraction(10) ** int(m.group(2)))
    return sign * v, False
  m = re.fullmatch(r'(\d+)?\\frac\{(.+?)\}\{(.+?)\}', s) or re.fullmatch(
      r'()(%s)/(%s)' % (_DEC, _DEC), s)
  if m:
    num, den = parse_number(m.group(2)), parse_number(m.group(3))
    if num is None or den is None or den[0] == 0:
      return None
    whole = fractions.Fraction(int(m.group(1) or 0))
    return sign * (whole + num[0] / den[0]), num[1] and den[1]
  return None


def numbers_close(a: Number, b: Number) -> bool:
  """Exact equality if both are exact, else REL_TOL / ABS_TOL closeness."""
  if a[1] and b[1]:
    return a[0] == b[0]
  x, y = float(a[0]), float(b[0])
  return math.isclose(x, y, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def percent_scales(s: str) -> tuple[str, list[fractions.Fraction]]:
  """Strips a trailing %; returns the scalings it allows."""
  if s.endswith('%'):
    return s[:-1], [fractions.Fraction(1), fractions.Fraction(1, 100)]
  return s, [fractions.Fraction(1)]


def _is_words(s: str) -> bool:
  return bool(re.fullmatch(r'[A-Za-z][A-Za-z ]*', s)) and len(s) > 1


def _choice(s: str, gold: bool) -> str | None:
  """A multiple-choice letter: gold `C`/`(C)`; pred also `c` or `(C) 12`."""
  if gold:
    m = re.fullmatch(r'\(?([A-E])\)?', s)
  else:
    m = re.fullmatch(r'\(?([A-Ea-e])\)?', s) or re.match(r'\(([A-E])\)', s)
  return m.group(1).upper() if m else None


def fast_leaf(pred: str, gold: str, mode: str = 'value') -> Tri:
  """Decides atoms by strings and numbers; None if SymPy is needed."""
  if pred == gold:
    return True
  if mode != 'value':
    return None
  p, p_scales = percent_scales(pred)
  g, g_scales = percent_scales(gold)
  if p == g:
    return True
  if _is_words(p) and _is_words(g):
    return p.lower() == g.lower()
  g_choice = _choice(g, gold=True)
  if g_choice:
    return _choice(p, gold=False) == g_choice
  pn, gn = parse_number(p), parse_number(g)
  if pn is not None and gn is not None:
    return any(numbers_close((pn[0] * a, pn[1]), (gn[0] * b, gn[1]))
               for a in p_scales for b in g_scales)
  if (pn is not None and _is_words(g)) or (gn is not None and _is_words(p)):
    return False
  return None


# -------------------------------------------------------------- structures

_MATRIX = re.compile(r'\\begin\{([pbvBV]?matrix|array)\}(?:\{[^}]*\})?'
                     r'(.*)\\end\{\1\}', re.S)
_VAR = re.compile(r"[a-zA-Z](?:_\{\w+\})?'*|[A-Z]{2}|[a-zA-Z]\([a-zA-Z]\)|"
                  r'\\(?:alpha|beta|gamma|delta|theta|lambda|mu|phi|varphi|'
                  r'psi|omega|rho|sigma|tau)')


def _expand_pm(items: list[str]) -> list[str]:
  """`a \\pm b` -> `a+b`, `a-b` (also `\\mp`)."""
  out = []
  for item in items:
    for op, signs in ((r'\pm', '+-'), (r'\mp', '-+')):
      parts = split_top(item, op)
      if len(parts) == 2:
        out.extend(parts[0] + s + parts[1] for s in signs)
        break
    else:
      out.append(item)
  return [x.lstrip('+') for x in out]


def _structure(s: str) -> tuple[str, list, str]:
  """(kind, items, brackets); kind in matrix/union/set/tuple/list/atom."""
  m = _MATRIX.fullmatch(s)
  if m:
    rows = [r for r in m.group(2).split('\\\\') if r.strip()]
    return 'matrix', [split_top(r, '&') for r in rows], ''
  parts = split_top(s, r'\cup')
  if len(parts) > 1:
    return 'union', parts, ''
  if s.startswith(r'\{') and s.endswith(r'\}') and (
      _close_bracket(s, 1) == len(s) - 1):
    return 'set', _expand_pm(split_top(s[2:-2], ',')), ''
  if s[:1] in '([' and s[-1:] in ')]' and _close_bracket(s, 0) == len(s) - 1:
    items = split_top(s[1:-1], ',')
    if len(items) > 1:
      return 'tuple', items, s[0] + s[-1]
  items = _expand_pm(split_top(s, ',') if parse_number(s) is None else [s])
  if len(items) > 1:
    return 'list', items, ''
  return 'atom', [s], ''


def _all(results) -> Tri:
  """Tri-state AND over an iterable (stops at the first False)."""
  unknown = False
  for r in results:
    if r is False:
      return False
    unknown |= r is None
  return None if unknown else True


def _has_matching(ok: list[list[bool]]) -> bool:
  """Whether the bipartite graph ok[i][j] has a perfect matching (Kuhn)."""
  n = len(ok)
  owner = [-1] * n

  def augment(i, seen):
    for j in range(n):
      if ok[i][j] and not seen[j]:
        seen[j] = True
        if owner[j] < 0 or augment(owner[j], seen):
          owner[j] = i
          return True
    return False

  return all(augment(i, [False] * n) for i in range(n))


def _match_unordered(ps: list[str], gs: list[str], leaf: Leaf) -> Tri:
  if len(ps) != len(gs):
    return False
  if _all(match(p, g, leaf) for p, g in zip(ps, gs)):
    return True
  table = [[match(p, g, leaf) for g in gs] for p in ps]
  if _has_matching([[r is True for r in row] for row in table]):
    return True
  if _has_matching([[r is not False for r in row] for row in table]):
    return None
  return False


def _orient(parts: list[str]) -> tuple[str | None, str]:
  """(variable, value) if one side of `parts` (an equation) is a variable."""
  if _VAR.fullmatch(parts[0]):
    return parts[0], parts[1]
  if _VAR.fullmatch(parts[1]):
    return parts[1], parts[0]
  return None, parts[1]


def _equation(s: str) -> list[str]:
  """[s], or [lhs, rhs] of `lhs = ... = rhs`."""
  parts = split_top(s, '=')
  return [parts[0], parts[-1]] if len(parts) > 1 and all(parts) else [s]


def _match_atoms(pred: str, gold: str, leaf: Leaf) -> Tri:
  """Atoms, possibly equations `x=2`, `y=2x+1`, `5x-7y+4=0`."""
  pe, ge = _equation(pred), _equation(gold)
  if len(pe) == 1 and len(ge) == 1:
    return leaf(pred, gold, 'value')
  pv, pr = _orient(pe) if len(pe) == 2 else (None, pred)
  gv, gr = _orient(ge) if len(ge) == 2 else (None, gold)
  if len(pe) == 2 and len(ge) == 2:
    if pv and gv:
      return match(pr, gr, leaf) if pv == gv else False
    if pe == ge or pe == ge[::-1]:
      return True
    return leaf(f'{pe[0]}-({pe[1]})', f'{ge[0]}-({ge[1]})', 'equation')
  if len(pe) == 2:  # "x = 5" or "2+3 = 5" against "5": compare the value.
    return match(pr, gold, leaf)
  return match(pred, gr, leaf) if gv else False


def match(pred: str, gold: str, leaf: Leaf) -> Tri:
  """Compares normalised answers; `leaf` decides atoms (see module doc)."""
  if pred == gold:
    return True
  pk, pi, pb = _structure(pred)
  gk, gi, gb = _structure(gold)
  if pk == 'atom' and gk == 'atom':
    return _match_atoms(pred, gold, leaf)
  if 'matrix' in (pk, gk):
    if pk == gk:
      if [len(r) for r in pi] != [len(r) for r in gi]:
        return False
      return _all(match(p, g, leaf) for rp, rg in zip(pi, gi)
                  for p, g in zip(rp, rg))
    # A row or column vector against a tuple.
    mat, other = (pi, gi) if pk == 'matrix' else (gi, pi)
    flat = [x for row in mat for x in row]
    if len(mat) != 1 and any(len(r) != 1 for r in mat):
      return False
    if (pb or gb) not in ('', '()') or {pk, gk} - {'matrix', 'tuple', 'list'}:
      return False
    if len(flat) != len(other):
      return False
    pairs = zip(flat, other) if pk == 'matrix' else zip(other, flat)
    return _all(match(p, g, leaf) for p, g in pairs)
  if pk == 'tuple' and gk == 'tuple':
    if pb != gb or len(pi) != len(gi):
      return False
    return _all(match(p, g, leaf) for p, g in zip(pi, gi))
  if {pk, gk} <= {'set', 'list', 'union'}:
    return _match_unordered(pi, gi, leaf)
  if {pk, gk} == {'tuple', 'list'}:
    if (pb or gb) != '()' or len(pi) != len(gi):
      return False
    return _all(match(p, g, leaf) for p, g in zip(pi, gi))
  if 'atom' in (pk, gk):
    atom = pred if pk == 'atom' else gold
    if len(_equation(atom)) == 2:
      return _match_atoms(pred, gold, leaf)
    return leaf(pred, gold, 'value')  # e.g. `x>2` against `(2,\infty)`.
  return False
