"""prover.check_proof: handmade proofs proved, wrong subgoals caught at the
right index, timeouts never accepted, bad input named."""

import pytest

from jaxreason.prover import ExpressionError, check_proof


def test_linear_equation_with_subgoals():
  r = check_proof({'x': 'int'}, ['3*x + 2 == 11'], 'x**2 == 9',
                  ['3*x == 9', 'x == 3'])
  assert r.proved and r.failed_step is None
  assert [s.status for s in r.steps] == ['entailed'] * 3
  assert r.hypotheses_consistent


def test_wrong_subgoal_is_caught_at_its_index():
  r = check_proof({'x': 'int'}, ['3*x + 2 == 11'], 'x**2 == 9',
                  ['3*x == 9', 'x == 4', 'x**2 == 16'])
  assert not r.proved and r.failed_step == 1
  assert 'step 1' in r.reason and 'counterexample' in r.reason
  assert 'x = 3' in r.reason


def test_steps_hold_but_goal_does_not_follow():
  r = check_proof({'x': 'real'}, ['x > 2'], 'x > 5', ['x > 1', 'x >= 2'])
  assert not r.proved and r.failed_step == 2  # len(steps)
  assert r.reason.startswith('goal')


def test_divisibility_mod_abs_and_connectives():
  v = {'n': 'int', 'x': 'real'}
  assert check_proof(v, ['Mod(n, 6) == 5'], 'n % 3 == 2',
                     ['Mod(n, 6) == 5', 'Mod(n, 3) == 2']).proved
  assert check_proof(v, ['Abs(x - 1) < 2'], '-1 < x < 3', []).proved
  assert check_proof(v, ['x > 0 and x < 1'], 'Implies(x > 0, x**2 < x)',
                     []).proved
  assert check_proof(v, ['n > 0'], 'n // 2 <= n', []).proved
  assert not check_proof(v, ['n > 0'], 'n / 2 == n // 2', []).proved
  assert check_proof(v, ['Or(n == 1, n == 2)'], 'Min(n, 5) <= 2', []).proved


def test_prover_alone_and_inconsistent_hypotheses():
  r = check_proof({'a': 'int', 'b': 'int'}, ['a + b == 10', 'a - b == 2'],
                  'a == 6', [])
  assert r.proved and len(r.steps) == 1
  r = check_proof({'a': 'int'}, ['a > 1', 'a < 0'], 'a == 100', [])
  assert r.proved and r.hypotheses_consistent is False  # Vacuous.


def test_timeout_never_accepts_an_unproved_step():
  # A false non-linear integer claim Z3 cannot refute in 1 ms.
  v = {'x': 'int', 'y': 'int', 'z': 'int'}
  hard = 'x**3 + y**3 != z**3 + 3'
  r = check_proof(v, ['x > 0', 'y > 0', 'z > 0'], 'x > 0', [hard],
                  timeout_s=0.001)
  assert not r.proved and r.failed_step == 0
  assert r.steps[0].status in ('timeout', 'not_entailed')
  if r.steps[0].status == 'timeout':
    assert 'never accepted' in r.reason


def test_sympy_identity_when_z3_gives_up():
  # Non-linear real identity: true for all x, y.
  r = check_proof({'x': 'real', 'y': 'real'}, [], '(x + y)**3 == '
                  'x**3 + 3*x**2*y + 3*x*y**2 + y**3', [], timeout_s=5.0)
  assert r.proved, r.reason


def test_unparsable_step_fails_there_and_bad_statement_raises():
  r = check_proof({'x': 'int'}, ['x == 1'], 'x == 1', ['x ==', 'x == 1'])
  assert not r.proved and r.failed_step == 0 and 'cannot parse' in r.reason
  r = check_proof({'x': 'int'}, ['x == 1'], 'x == 1', ['y == 1'])
  assert r.failed_step == 0 and "unknown name 'y'" in r.reason
  r = check_proof({'x': 'int'}, ['x == 1'], 'x == 1', ['x + 1'])
  assert r.failed_step == 0 and 'not a claim' in r.reason
  with pytest.raises(ExpressionError, match='unsupported construct'):
    check_proof({'x': 'int'}, ['x.real == 1'], 'x == 1', [])
  with pytest.raises(ExpressionError, match="unknown function 'exec'"):
    check_proof({'x': 'int'}, ['exec("1") == 1'], 'x == 1', [])
  with pytest.raises(ExpressionError, match="type 'nat'"):
    check_proof({'x': 'nat'}, [], 'x == 1', [])
