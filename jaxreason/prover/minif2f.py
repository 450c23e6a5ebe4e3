r"""miniF2F Isabelle statements in the checker's language, and the baseline.

  python -m jaxreason.prover.minif2f --out=benchmarks/minif2f_baseline.json

parses every `isabelle/test/*.thy` under the data folder (see
jaxreason/data/paths.py), pairs it with `informal/test/NAME.json`, and runs
`check_proof` with no subgoals on each parsed statement (the prover-alone
baseline). The JSON holds per-problem status, the counts, and per-construct
counts of what the parser did not understand.

What the parser covers (anything else raises UnsupportedConstruct naming
the construct): `fixes` of type real / int / nat (nat becomes int with a
hypothesis `x >= 0`), `assumes` / `shows` or a bare quoted statement;
+ - * / ^ div mod dvd abs \<bar>..\<bar> min max, = \<noteq> < \<le> > \<ge>,
\<and> \<or> \<not> \<longrightarrow> \<longleftrightarrow>, type annotations
(`(5::nat)`, dropped), and sums \<Sum>k\<in>{a..b}. e, {a..<b}, \<Sum>k<n. e,
\<Sum>k\<le>n. e with integer-literal bounds (expanded; at most 500 terms).
Caveats, by design: Isabelle's `x mod 0 = x` and `x div 0 = 0` are not
modelled; subtraction is refused in statements with nat variables
(Isabelle's truncated subtraction differs from int's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import re
import sys
import time
from typing import Sequence

from jaxreason.data import paths
from jaxreason.prover.checker import ExpressionError, check_proof, parse, symbols


class UnsupportedConstruct(ValueError):
  """A statement outside the parsed fragment; `.construct` names what."""

  def __init__(self, construct: str, where: str = ''):
    self.construct = construct
    super().__init__(f'unsupported construct {construct!r}'
                     + (f' in {where}' if where else ''))


@dataclasses.dataclass(frozen=True)
class Statement:
  name: str
  variables: dict
  hypotheses: tuple[str, ...]
  goal: str
  informal_statement: str = ''
  informal_proof: str = ''


_TYPES = {'real': 'real', 'int': 'int', 'nat': 'int'}
_SYMBOLS = {r'\<and>': '&', r'\<or>': '|', r'\<not>': '~',
            r'\<longrightarrow>': '-->', r'\<longleftrightarrow>': '<->',
            r'\<noteq>': '!=', r'\<le>': '<=', r'\<ge>': '>=',
            r'\<bar>': '|bar|', r'\<Sum>': 'SUM', r'\<in>': 'IN'}
_TOKEN = re.compile(r'\s*(\\<[A-Za-z^]+>|-->|<->|\|bar\||::|\.\.<|\.\.|<=|>=|'
                    r'!=|\d+\.\d+|\d+|[A-Za-z_][A-Za-z_0-9\']*|\S)')
# Binary operators: token -> (precedence, right associative, formatter).
_BIN = {
    '-->': (25, True, lambda a, b: f'Implies({a}, {b})'),
    '<->': (24, False, lambda a, b: f'Eq({a}, {b})'),
    '|': (30, True, lambda a, b: f'Or({a}, {b})'),
    '&': (35, True, lambda a, b: f'And({a}, {b})'),
    '=': (50, False, lambda a, b: f'({a} == {b})'),
    '!=': (50, False, lambda a, b: f'({a} != {b})'),
    '<': (50, False, lambda a, b: f'({a} < {b})'),
    '<=': (50, False, lambda a, b: f'({a} <= {b})'),
    '>': (50, False, lambda a, b: f'({a} > {b})'),
    '>=': (50, False, lambda a, b: f'({a} >= {b})'),
    'dvd': (50, False, lambda a, b: f'(Mod({b}, {a}) == 0)'),
    '+': (65, False, lambda a, b: f'({a} + {b})'),
    '-': (65, False, lambda a, b: f'({a} - {b})'),
    '*': (70, False, lambda a, b: f'({a} * {b})'),
    '/': (70, False, lambda a, b: f'({a} / {b})'),
    'div': (70, False, lambda a, b: f'({a} // {b})'),
    'mod': (70, False, lambda a, b: f'Mod({a}, {b})'),
    '^': (80, True, lambda a, b: f'({a} ** {b})'),
}
_FUNCS = {'abs': ('Abs', 1), 'min': ('Min', 2), 'max': ('Max', 2),
          'floor': ('floor', 1), 'ceiling': ('ceiling', 1)}
_MAX_TERMS = 500


def tokenize(text: str) -> list[str]:
  out = []
  for tok in _TOKEN.findall(text):
    out.append(_SYMBOLS.get(tok, tok))
  return out


class _Term:
  """Pratt parser from Isabelle term tokens to checker-syntax strings."""

  def __init__(self, tokens: Sequence[str], names: set, where: str,
               bound: dict | None = None):
    self.toks, self.i, self.names, self.where = list(tokens), 0, names, where
    self.bound = dict(bound or {})
    self.subtracts = False

  def peek(self):
    return self.toks[self.i] if self.i < len(self.toks) else None

  def take(self, want=None):
    tok = self.peek()
    if tok is None or (want is not None and tok != want):
      raise UnsupportedConstruct(f'expected {want!r}, found {tok!r}',
                                 self.where)
    self.i += 1
    return tok

  def parse_all(self) -> str:
    out = self.expr(0)
    if self.peek() is not None:
      raise UnsupportedConstruct(self.peek(), self.where)
    return out

  def expr(self, min_prec: int) -> str:
    left = self.prefix()
    while True:
      tok = self.peek()
      if tok == '::':
        self.take()
        self._type()
        continue
      if tok not in _BIN:
        return left
      prec, right, fmt = _BIN[tok]
      if prec < min_prec:
        return left
      self.take()
      if tok == '-':
        self.subtracts = True
      rhs = self.expr(prec if right else prec + 1)
      left = fmt(left, rhs)

  def _type(self):
    kind = self.take()
    if kind not in _TYPES:
      raise UnsupportedConstruct(f'type {kind}', self.where)

  def prefix(self) -> str:
    tok = self.peek()
    if tok == '~':
      self.take()
      return f'Not({self.expr(40)})'
    if tok == '-':
      self.take()
      return f'(-{self.expr(75)})'
    if tok == 'SUM':
      return self.sum()
    return self.application()

  def application(self) -> str:
    tok = self.peek()
    if tok in _FUNCS:
      self.take()
      name, arity = _FUNCS[tok]
      args = [self.atom() for _ in range(arity)]
      return f'{name}({", ".join(args)})'
    head = self.atom()
    nxt = self.peek()
    if nxt is not None and (nxt == '(' or re.match(r'[A-Za-z_\d]', nxt)) \
        and nxt not in _BIN and nxt not in ('IN',):
      if re.fullmatch(r'[A-Za-z_]\w*', nxt) and nxt not in self.names:
        raise UnsupportedConstruct(nxt, self.where)  # e.g. powr, choose
      raise UnsupportedConstruct(f'function application {tok}', self.where)
    return head

  def atom(self) -> str:
    tok = self.take()
    if tok == '(':
      inner = self.expr(0)
      self.take(')')
      return f'({inner})'
    if tok == '|bar|':
      inner = self.expr(0)
      self.take('|bar|')
      return f'Abs({inner})'
    if re.fullmatch(r'\d+(\.\d+)?', tok):
      return tok
    if tok in ('True', 'False'):
      return tok
    if tok in self.bound:
      return f'({self.bound[tok]})'
    if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9']*", tok) and tok not in _BIN:
      if tok in self.names:
        return tok
      raise UnsupportedConstruct(f'name {tok}', self.where)
    raise UnsupportedConstruct(tok, self.where)

  def sum(self) -> str:
    """\\<Sum>k\\<in>{a..b}. e | {a..<b} | \\<Sum>k<n. e | \\<Sum>k<=n. e"""
    self.take('SUM')
    var = self.take()
    if not re.fullmatch(r'[A-Za-z_]\w*', var):
      raise UnsupportedConstruct(f'sum binder {var}', self.where)
    if self.peek() == '::':
      self.take()
      self._type()
    rel = self.take()
    if rel == 'IN':
      self.take('{')
      lo = self._literal()
      dots = self.take()
      if dots not in ('..', '..<'):
        raise UnsupportedConstruct(f'sum range {dots}', self.where)
      hi = self._literal() + (0 if dots == '..' else -1)
      self.take('}')
    elif rel in ('<', '<='):
      lo, hi = 0, self._literal() - (rel == '<')
    else:
      raise UnsupportedConstruct(f'sum over {rel}', self.where)
    self.take('.')
    if hi - lo + 1 > _MAX_TERMS:
      raise UnsupportedConstruct(f'sum of {hi - lo + 1} terms', self.where)
    start = self.i
    terms = []
    for k in range(lo, hi + 1):
      self.i = start
      saved = self.bound.get(var)
      self.bound[var] = str(k)
      terms.append(self.expr(26))  # the body runs to the end of the scope
      self.bound.pop(var) if saved is None else self.bound.update({var: saved})
    if not terms:  # empty range: skip the body to find where it ends
      self.bound[var] = '0'
      self.expr(26)
      self.bound.pop(var)
    return '(' + (' + '.join(terms) or '0') + ')'

  def _literal(self) -> int:
    tok = self.take()
    if not tok.isdigit():
      raise UnsupportedConstruct(f'symbolic sum bound {tok}', self.where)
    if self.peek() == '::':
      self.take()
      self._type()
    return int(tok)


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)


def _theorem_text(thy: str) -> str:
  m = re.search(r'\b(?:theorem|lemma)\s+\w+\s*:?(.*?)(?=\s(?:using|by|'
                r'proof|apply|sorry|oops|unfolding)\b)', thy, re.S)
  if not m:
    raise UnsupportedConstruct('theorem layout')
  return re.sub(r'\(\*.*?\*\)', ' ', m.group(1), flags=re.S)


def parse_statement(thy: str, name: str = '') -> Statement:
  """An Isabelle theory's theorem as a Statement, else UnsupportedConstruct."""
  body = _theorem_text(thy)
  parts = re.split(r'\b(fixes|assumes|shows)\b', body)
  fixes, assumes, shows = '', '', None
  if len(parts) == 1:
    quoted = _QUOTED.findall(body)
    if len(quoted) != 1:
      raise UnsupportedConstruct('statement layout', name)
    shows = quoted[0]
  else:
    for key, text in zip(parts[1::2], parts[2::2]):
      if key == 'fixes':
        fixes = text
      elif key == 'assumes':
        assumes = text
      else:
        quoted = _QUOTED.findall(text)
        if len(quoted) != 1:
          raise UnsupportedConstruct('shows with several goals', name)
        shows = quoted[0]
  if shows is None:
    raise UnsupportedConstruct('missing shows', name)
  variables, nat = {}, []
  for group in re.split(r'\band\b', fixes):
    if not group.strip():
      continue
    m = re.fullmatch(r'\s*([\w\s\']+?)\s*::\s*"?\s*(\w+)\s*"?\s*', group)
    if not m:
      kind = group.split('::')[-1].strip().strip('"')
      raise UnsupportedConstruct(f'type {kind}', name)
    if m.group(2) not in _TYPES:
      raise UnsupportedConstruct(f'type {m.group(2)}', name)
    for var in m.group(1).split():
      variables[_py_name(var)] = _TYPES[m.group(2)]
      if m.group(2) == 'nat':
        nat.append(_py_name(var))
  names = set(variables)
  _check_free_names(shows, assumes, names, name)
  subtracts = False
  hyps = [f'{v} >= 0' for v in nat]
  for text in _QUOTED.findall(assumes):
    t = _Term(tokenize(_rename(text)), names, name)
    hyps.append(t.parse_all())
    subtracts |= t.subtracts
  g = _Term(tokenize(_rename(shows)), names, name)
  goal = g.parse_all()
  if nat and (subtracts or g.subtracts):
    raise UnsupportedConstruct('nat subtraction', name)
  syms = symbols(variables)
  for text in hyps + [goal]:
    try:
      parse(text, syms)
    except ExpressionError as e:  # a translation bug, not user input
      raise UnsupportedConstruct(f'untranslatable term ({e})', name) from None
  return Statement(name, variables, tuple(hyps), goal)


def _py_name(var: str) -> str:
  return var.replace("'", '_prime')


def _rename(text: str) -> str:
  return re.sub(r"([A-Za-z_]\w*)'", r'\1_prime', text)


def _check_free_names(shows, assumes, names, where):
  for sym in re.findall(r'\\<(\w+)>', shows + assumes):
    if '\\<' + sym + '>' not in _SYMBOLS:
      raise UnsupportedConstruct('\\<' + sym + '>', where)


def load(data: pathlib.Path) -> tuple[list[Statement], dict[str, str]]:
  """(parsed statements, {name: construct} for those not parsed)."""
  thys = sorted((data / 'minif2f' / 'isabelle' / 'test').glob('*.thy'))
  if not thys:
    raise FileNotFoundError(f'no miniF2F .thy files under {data}/minif2f/'
                            'isabelle/test')
  parsed, failed = [], {}
  for path in thys:
    try:
      st = parse_statement(path.read_text(), path.stem)
    except UnsupportedConstruct as e:
      failed[path.stem] = getattr(e, 'construct', str(e))
      continue
    informal = data / 'minif2f' / 'informal' / 'test' / f'{path.stem}.json'
    if informal.exists():
      rec = json.loads(informal.read_text())
      st = dataclasses.replace(
          st, informal_statement=rec.get('informal_statement', ''),
          informal_proof=rec.get('informal_proof', ''))
    parsed.append(st)
  return parsed, failed


def baseline(data: pathlib.Path, timeout_s: float = 5.0) -> dict:
  """Parse all of miniF2F test, then check each with no subgoals."""
  parsed, failed = load(data)
  problems = {n: {'status': 'unsupported', 'construct': c}
              for n, c in failed.items()}
  proved = 0
  for st in parsed:
    start = time.time()
    try:
      r = check_proof(st.variables, st.hypotheses, st.goal, [],
                      timeout_s=timeout_s)
    except ExpressionError as e:  # parsed, but outside the Z3 translation
      problems[st.name] = {'status': 'checker_error', 'goal': st.goal,
                           'reason': str(e)[:300]}
      continue
    proved += r.proved
    problems[st.name] = {
        'status': 'proved' if r.proved else r.steps[-1].status,
        'variables': st.variables, 'hypotheses': list(st.hypotheses),
        'goal': st.goal, 'hypotheses_consistent': r.hypotheses_consistent,
        'reason': r.reason[:300], 'seconds': round(time.time() - start, 3)}
  constructs: dict[str, int] = {}
  for c in failed.values():
    constructs[c] = constructs.get(c, 0) + 1
  return {'total': len(parsed) + len(failed), 'parsed': len(parsed),
          'proved_without_subgoals': proved, 'timeout_s': timeout_s,
          'unsupported_constructs': dict(sorted(
              constructs.items(), key=lambda kv: -kv[1])),
          'problems': dict(sorted(problems.items()))}


def main(argv: Sequence[str]) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--data_dir', default='')
  p.add_argument('--out', default='benchmarks/minif2f_baseline.json')
  p.add_argument('--timeout_s', type=float, default=5.0)
  args = p.parse_args(argv)
  data = paths.require(paths.data_dir(args.data_dir) / 'minif2f', 'miniF2F')
  result = baseline(data.parent, args.timeout_s)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=1) + '\n')
  print(f"parsed {result['parsed']}/{result['total']}, proved without "
        f"subgoals {result['proved_without_subgoals']}; wrote {out}")


if __name__ == '__main__':
  main(sys.argv[1:])
