"""The oracle step verifier and the question parser it relies on."""

import numpy as np
import pytest

from jaxreason.data import synthetic
from jaxreason.verifiers import aggregate, OracleVerifier


@pytest.mark.parametrize('word_problem', [True, False])
@pytest.mark.parametrize('modulus', [10, 7, None])
def test_parse_question_recovers_every_problem(word_problem, modulus):
  cfg = synthetic.ArithmeticConfig(num_steps=5, word_problem=word_problem,
                                   modulus=modulus)
  for p in synthetic.generate_dataset(3, 300, cfg):
    assert synthetic.parse_question(p.question) == p, p.question


def test_parse_question_rejects_other_text():
  assert synthetic.parse_question('What is 2+2?') is None
  assert synthetic.parse_question('Start at 3. Jump 4. Answer mod 10.') is None


def _problems(n=40, seed=0):
  return synthetic.generate_dataset(seed, n, synthetic.ArithmeticConfig())


def test_reference_solutions_score_one_everywhere():
  problems = _problems()
  judgements = OracleVerifier().judge(
      [p.question for p in problems],
      [synthetic.split_steps(p.solution) for p in problems])
  for p, j in zip(problems, judgements):
    assert j.step_scores == (1.0,) * (p.num_steps + 1)
    assert j.first_error == -1 and j.tokens == 0


def test_flawed_solutions_score_zero_from_the_first_error():
  rng = np.random.default_rng(0)
  problems = _problems()
  verifier = OracleVerifier(problems)  # Given up front: no parsing.
  for p in problems:
    kind = ('result', 'operand')[int(rng.integers(2))]
    f = synthetic.make_flawed_solution(rng, p, error_kind=kind)
    [j] = verifier.judge([p.question], [synthetic.split_steps(f.text)])
    k = f.first_wrong_step
    assert j.first_error == k
    assert j.step_scores == (1.0,) * k + (0.0,) * (p.num_steps + 1 - k)
    for how in ('last', 'min', 'prod'):
      assert aggregate(j.step_scores, how) == 0.0


def test_box_rules_and_unknown_questions():
  p = _problems(1)[0]
  v = OracleVerifier()
  steps = list(p.steps)
  wrong_box = steps + [f'\\boxed{{{(int(p.answer) + 1) % 10}}}']
  early_box = steps[:-1] + [f'\\boxed{{{p.answer}}}']
  after_box = steps + [f'\\boxed{{{p.answer}}}', steps[0]]
  partial = steps[:2]
  js = v.judge([p.question] * 4, [wrong_box, early_box, after_box, partial])
  assert js[0].step_scores[-1] == 0.0 and js[0].first_error == p.num_steps
  assert js[1].step_scores[-1] == 0.0
  assert js[2].step_scores == (1.0,) * (p.num_steps + 1) + (0.0,)
  assert js[3].step_scores == (1.0, 1.0) and js[3].first_error == -1
  [j] = v.judge(['What is 2+2?'], [['2+2=4']])
  assert j.step_scores is None and 'error' in j.info
  assert aggregate(j.step_scores, 'last') is None
