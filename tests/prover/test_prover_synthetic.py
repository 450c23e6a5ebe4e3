"""The synthetic domain: text round trips, and the checker on its proofs."""

import re

import pytest

from jaxreason.prover import generators
from jaxreason.prover import synthetic

try:
  from jaxreason.prover import check_proof  # The checker (branch prover-check).
except ImportError:  # pragma: no cover - before the checker is merged.
  check_proof = None
needs_checker = pytest.mark.skipif(check_proof is None,
                                   reason='jaxreason.prover.check_proof absent')


def _eval_int(expr, env):
  """Evaluates a claim with Python integers ('Mod' is Python's %)."""
  return eval(expr, {'Mod': lambda a, b: a % b}, env)  # pylint: disable=eval-used


def test_every_template_and_distinct_problems():
  problems = synthetic.generate_problems(50, seed=3)
  assert {p.template for p in problems} == set(synthetic.TEMPLATES)
  assert len({p.formal for p in problems}) == 50
  more = synthetic.generate_problems(20, seed=3, exclude=problems)
  assert not {p.formal for p in more} & {p.formal for p in problems}


def test_known_proofs_hold_at_the_solution():
  # Independent of any solver: at the stated solution (and for the
  # remainder template at every n with that remainder) hypotheses, steps
  # and goal are true Python expressions.
  for p in synthetic.generate_problems(60, seed=1):
    assert p.steps[-1] == p.goal and len(p.sketch) == len(p.steps)
    if p.template == 'modular':
      m, r = map(int, re.match(r'Mod\(n, (\d+)\) == (\d+)',
                               p.hypotheses[0]).groups())
      envs = [{'n': r + m * q} for q in range(-3, 4)]
    elif p.template == 'inequality':
      q = int(p.goal.split()[-1])
      envs = [{'x': q + d} for d in ((1, 2, 7) if '>' in p.goal
                                     else (-1, -2, -7))]
    elif p.template == 'system':
      s, d = (int(h.split('==')[1]) for h in p.hypotheses)
      envs = [{'x': (s + d) // 2, 'y': (s - d) // 2}]
    else:
      envs = [{'x': int(p.goal.split('==')[1])}]
    for env in envs:
      for claim in p.hypotheses + p.steps:
        assert _eval_int(claim, env), (p, claim, env)


def test_formal_text_round_trip_and_bad_input():
  p = synthetic.generate_problems(4, seed=0, templates=('system',))[0]
  assert synthetic.parse_formal(p.formal) == (
      dict(p.variables), list(p.hypotheses), p.goal)
  assert synthetic.parse_steps(synthetic.format_steps(p.steps)) == list(p.steps)
  with pytest.raises(ValueError, match='expected'):
    synthetic.parse_formal('x == 2')
  with pytest.raises(ValueError, match='variable'):
    synthetic.parse_formal('{x:nat} x > 0 => x > -1')
  with pytest.raises(ValueError, match='empty step'):
    synthetic.parse_steps('x == 1 ;  ; x == 2')
  with pytest.raises(ValueError, match='unknown'):
    synthetic.generate_problems(2, seed=0, templates=('geometry',))


def test_sft_records_have_the_three_prompt_formats():
  p = synthetic.generate_problems(1, seed=0)[0]
  recs = generators.sft_records([(p.informal, generators.known_chain(p))])
  assert [r['stage'] for r in recs] == list(generators.STAGES)
  assert recs[0] == {'prompt': f'F: {p.informal}\n', 'completion': p.formal,
                     'stage': 'formalise'}
  assert recs[2]['prompt'].startswith(f'P: {p.formal} | ')
  assert recs[2]['completion'] == ' ; '.join(p.steps)


@needs_checker
def test_checker_proves_generated_proofs_and_catches_a_corrupted_step():
  for p in synthetic.generate_problems(10, seed=5):
    variables = dict(p.variables)
    report = check_proof(variables, list(p.hypotheses), p.goal, list(p.steps))
    assert report.proved, (p, report.reason)
    for i in range(len(p.steps)):
      bad = check_proof(variables, list(p.hypotheses), p.goal,
                        list(synthetic.corrupt_step(p, i)))
      assert not bad.proved and bad.failed_step == i, (p, i, bad)
