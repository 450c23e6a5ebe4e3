"""prover.minif2f: Isabelle statements parsed into the checker's language
(expected parses written by hand), unsupported constructs named, and the
prover-alone check on parsed statements."""

import pytest
import sympy

from jaxreason.data import paths
from jaxreason.prover import check_proof
from jaxreason.prover.checker import parse, symbols
from jaxreason.prover.minif2f import UnsupportedConstruct, load, parse_statement

MINIF2F = paths.data_dir() / 'minif2f'
needs_data = pytest.mark.skipif(
    not (MINIF2F / 'isabelle' / 'test').exists(),
    reason=f'miniF2F data absent ({paths.ENV_VAR} / ../shared/data)')

# name -> (variables, hypotheses, goal), written by hand from the .thy files.
EXPECTED = {
    'mathd_algebra_107': ({'x': 'real', 'y': 'real'},
                          ['x**2 + 8*x + y**2 - 6*y == 0'],
                          '(x + 4)**2 + (y - 3)**2 == 25'),
    'aime_1987_p5': ({'x': 'int', 'y': 'int'},
                     ['y**2 + 3*x**2*y**2 == 30*x**2 + 517'],
                     '3*x**2*y**2 == 588'),
    'mathd_numbertheory_99': ({'n': 'int'},
                              ['n >= 0', 'Mod(2*n, 47) == 15'],
                              'Mod(n, 47) == 31'),
    'mathd_algebra_478': ({'b': 'real', 'h': 'real', 'v': 'real'},
                          ['And(0 < b, 0 < h, 0 < v)', 'v == b*h/3',
                           'b == 30', 'h == 13/2'], 'v == 65'),
    'algebra_absxm1pabsxpabsxp1eqxp2_0leqxleq1': (
        {'x': 'real'}, ['Abs(x - 1) + Abs(x) + Abs(x + 1) == x + 2'],
        'And(0 <= x, x <= 1)'),
    'mathd_numbertheory_229': ({}, [], 'Mod(5**30, 7) == 1'),
    'mathd_numbertheory_3': ({}, [], 'Mod(285, 10) == 5'),
}
UNSUPPORTED = {'aime_1983_p2': 'type real \\<Rightarrow> real',
               'mathd_algebra_756': 'powr',
               'mathd_algebra_302': '\\<i>'}


def _same(a: str, b: str, variables) -> bool:
  names = symbols(variables)
  x, y = parse(a, names), parse(b, names)
  return x == y or sympy.simplify(sympy.Xor(x, y)) == sympy.false


def test_inline_statement_parses_without_data():
  thy = '''theorem t:
  fixes n :: nat and r :: real
  assumes h0: "3 dvd n \\<and> n \\<le> 10"
      and "\\<bar>r + 1\\<bar> < 2 \\<longrightarrow> r div 2 = 0"
  shows "(\\<Sum>k\\<in>{1..<4}. k * n) mod 5 = 0 \\<or> \\<not> (r \\<noteq> 1)"
  sorry'''
  st = parse_statement(thy, 't')
  v = {'n': 'int', 'r': 'real'}
  assert st.variables == v
  want = ['n >= 0', 'And(Mod(n, 3) == 0, n <= 10)',
          'Implies(Abs(r + 1) < 2, floor(r/2) == 0)']
  assert len(st.hypotheses) == 3
  for got, exp in zip(st.hypotheses, want):
    assert _same(got, exp, v), (got, exp)
  assert _same(st.goal, 'Or(Mod(6*n, 5) == 0, r == 1)', v), st.goal


def test_unsupported_constructs_are_named():
  with pytest.raises(UnsupportedConstruct, match='sqrt'):
    parse_statement('theorem t: fixes x :: real shows "sqrt x = 2" sorry')
  with pytest.raises(UnsupportedConstruct, match='nat subtraction'):
    parse_statement('theorem t: fixes x :: nat shows "x - 1 < x" sorry')
  with pytest.raises(UnsupportedConstruct, match='type complex'):
    parse_statement('theorem t: fixes z :: complex shows "z = z" sorry')


@needs_data
@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_minif2f_statement_parse(name):
  thy = (MINIF2F / 'isabelle' / 'test' / f'{name}.thy').read_text()
  st = parse_statement(thy, name)
  variables, hyps, goal = EXPECTED[name]
  assert st.variables == variables
  assert len(st.hypotheses) == len(hyps), st.hypotheses
  for got, exp in zip(st.hypotheses, hyps):
    assert _same(got, exp, variables), (got, exp)
  assert _same(st.goal, goal, variables), st.goal


@needs_data
@pytest.mark.parametrize('name', sorted(UNSUPPORTED))
def test_minif2f_unsupported(name):
  thy = (MINIF2F / 'isabelle' / 'test' / f'{name}.thy').read_text()
  with pytest.raises(UnsupportedConstruct) as e:
    parse_statement(thy, name)
  assert e.value.construct == UNSUPPORTED[name]


@needs_data
def test_load_pairs_informal_and_checker_proves_easy_ones():
  parsed, failed = load(MINIF2F.parent)
  assert len(parsed) + len(failed) == 244
  by_name = {s.name: s for s in parsed}
  st = by_name['mathd_algebra_478']
  assert 'volume' in st.informal_statement.lower() and st.informal_proof
  r = check_proof(st.variables, st.hypotheses, st.goal, [], timeout_s=5.0)
  assert r.proved
  st = by_name['mathd_numbertheory_99']  # linear mod: Z3 alone decides it
  assert check_proof(st.variables, st.hypotheses, st.goal, []).proved
