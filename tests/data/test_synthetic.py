"""Tests for jaxreason.data.synthetic (arithmetic problems and checkers)."""

import itertools
import json
import string

import numpy as np
import pytest

from jaxreason.data import synthetic

_CONFIGS = [
    synthetic.ArithmeticConfig(),
    synthetic.ArithmeticConfig(num_steps=1),
    synthetic.ArithmeticConfig(num_steps=8, word_problem=False),
    synthetic.ArithmeticConfig(modulus=None),
    synthetic.ArithmeticConfig(num_steps=8, modulus=None, ops=('-', '*')),
    synthetic.ArithmeticConfig(min_operand=10, max_operand=99, modulus=None),
    synthetic.ArithmeticConfig(min_operand=0, max_operand=99, modulus=97),
    synthetic.ArithmeticConfig(num_steps=3, ops=('-',), modulus=7),
]


def _reference_answer(problem):
  """Evaluates the chain independently of the generator's bookkeeping."""
  value = problem.start
  for op, b in zip(problem.ops, problem.operands):
    value = eval(f'({value}){op}({b})')  # pylint: disable=eval-used
    if problem.modulus is not None:
      value %= problem.modulus
  return value


def test_same_seed_same_data_different_seed_different():
  config = synthetic.ArithmeticConfig()
  a = synthetic.generate_dataset(0, 50, config)
  b = synthetic.generate_dataset(0, 50, config)
  c = synthetic.generate_dataset(1, 50, config)
  assert a == b
  assert [p.question for p in a] != [p.question for p in c]
  assert len({p.question for p in a}) > 45


@pytest.mark.parametrize('config', _CONFIGS)
def test_reference_solutions_check_out(config):
  for problem in synthetic.generate_dataset(7, 200, config):
    assert problem.num_steps == config.num_steps
    assert int(problem.answer) == _reference_answer(problem)
    result = synthetic.check_solution(problem, problem.solution)
    assert result.step_correct == (True,) * config.num_steps, problem
    assert result.first_wrong_step == -1
    assert result.final_answer == problem.answer
    assert result.answer_correct
    assert result.well_formed
    operands = (problem.start,) + problem.operands
    assert all(config.min_operand <= x <= config.max_operand for x in operands)
    if config.modulus is not None:
      assert all(0 <= v < config.modulus for v in problem.values)
      assert problem.question.endswith(f'Answer mod {config.modulus}.')


def test_solution_layout():
  problem = synthetic.generate_dataset(0, 1, synthetic.ArithmeticConfig())[0]
  blocks = problem.solution.split('\n\n')
  assert blocks[:-1] == list(problem.steps)
  assert blocks[-1] == '\\boxed{' + problem.answer + '}'
  assert synthetic.split_steps(problem.solution) == blocks
  assert synthetic.format_prompt(problem) == problem.question + '\n'


def test_hand_computed_problem():
  # 7 +5 -> 2, -4 -> 8 (Python %), *3 -> 4, all mod 10.
  problem = synthetic.Problem(
      question='q', steps=('7+5=2', '2-4=8', '8*3=4'), answer='4', start=7,
      ops=('+', '-', '*'), operands=(5, 4, 3), values=(2, 8, 4), modulus=10)
  text = '7+5=2\n\n2-4=8\n\n8*3=4\n\n\\boxed{4}'
  assert problem.solution == text
  assert synthetic.check_solution(problem, text) == synthetic.SolutionCheck(
      step_correct=(True, True, True), first_wrong_step=-1, final_answer='4',
      answer_correct=True, well_formed=True)
  # Plain arithmetic is not accepted where the modulus applies.
  assert not synthetic.check_step(problem, 1, '2-4=-2')
  assert synthetic.check_step(problem, 1, '2 - 4 = 8')
  slipped = '7+5=2\n\n2-4=7\n\n7*3=1\n\n\\boxed{1}'
  result = synthetic.check_solution(problem, slipped)
  assert result.step_correct == (True, False, False)
  assert result.first_wrong_step == 1
  assert result.final_answer == '1' and not result.answer_correct
  assert synthetic.apply_op(2, '-', 4, 10) == 8
  assert synthetic.apply_op(2, '-', 4) == -2
  assert synthetic.apply_op(12, '*', 11) == 132


def test_check_step_rejects_corruptions():
  config = synthetic.ArithmeticConfig(num_steps=4)
  problem = synthetic.generate_dataset(3, 1, config)[0]
  for i, step in enumerate(problem.steps):
    a, op, b, r = synthetic.parse_step(step)
    assert synthetic.check_step(problem, i, step)
    assert synthetic.check_step(problem, i, f' {a} {op} {b} = {r} ')
    assert not synthetic.check_step(problem, i, f'{a}{op}{b}={(r + 1) % 10}')
    assert not synthetic.check_step(problem, i, f'{a + 1}{op}{b}={r}')
    assert not synthetic.check_step(problem, i, f'{a}{op}{b + 1}={r}')
    other_op = '+' if op != '+' else '-'
    assert not synthetic.check_step(problem, i, f'{a}{other_op}{b}={r}')
    assert not synthetic.check_step(problem, i, f'{a}{op}{b}=')
    assert not synthetic.check_step(problem, i, 'hello')
  assert not synthetic.check_step(problem, 4, problem.steps[-1])
  assert not synthetic.check_step(problem, -1, problem.steps[-1])


def test_check_solution_malformed_and_truncated():
  problem = synthetic.generate_dataset(5, 1, synthetic.ArithmeticConfig())[0]
  truncated = '\n\n'.join(problem.steps[:2])
  result = synthetic.check_solution(problem, truncated)
  assert result.step_correct == (True, True, False, False)
  assert result.first_wrong_step == 2
  assert result.final_answer is None
  assert not result.answer_correct
  assert not result.well_formed

  # Right answer with no work: answer credit, no step credit.
  bare = '\\boxed{' + problem.answer + '}'
  result = synthetic.check_solution(problem, bare)
  assert result.answer_correct and not result.well_formed
  assert result.first_wrong_step == 0

  # Extra prose after the box is not well formed.
  result = synthetic.check_solution(problem, problem.solution + '\n\nDone.')
  assert result.answer_correct and not result.well_formed

  wrong_box = '\n\n'.join(problem.steps) + '\n\n\\boxed{x}'
  result = synthetic.check_solution(problem, wrong_box)
  assert result.first_wrong_step == -1
  assert result.well_formed and not result.answer_correct


@pytest.mark.parametrize('kind', synthetic.flawed.ERROR_KINDS)
@pytest.mark.parametrize('config', _CONFIGS[:6])
def test_flawed_solution_first_wrong_step(config, kind):
  rng = np.random.default_rng(0)
  problems = synthetic.generate_dataset(11, 40, config)
  wrong_answers = 0
  for problem, error_step in zip(problems, itertools.cycle(range(8))):
    error_step %= problem.num_steps
    flawed = synthetic.make_flawed_solution(
        rng, problem, error_step=error_step, error_kind=kind)
    assert flawed.first_wrong_step == error_step
    result = synthetic.check_solution(problem, flawed.text)
    assert result.first_wrong_step == error_step
    assert result.step_correct == flawed.step_correct
    assert result.well_formed
    assert result.answer_correct == flawed.answer_correct
    assert flawed.steps[:error_step] == problem.steps[:error_step]
    if kind == 'result':
      # The slipped step keeps the right expression but not the right value.
      a, op, b, r = synthetic.parse_step(flawed.steps[error_step])
      assert (a, op, b) == (problem.inputs[error_step],
                            problem.ops[error_step],
                            problem.operands[error_step])
      assert r != problem.values[error_step]
    wrong_answers += not flawed.answer_correct
  assert wrong_answers >= len(problems) // 2


def test_flawed_solution_random_step_is_deterministic():
  problem = synthetic.generate_dataset(2, 1, synthetic.ArithmeticConfig())[0]
  a = synthetic.make_flawed_solution(np.random.default_rng(4), problem)
  b = synthetic.make_flawed_solution(np.random.default_rng(4), problem)
  assert a == b
  seen = {synthetic.make_flawed_solution(np.random.default_rng(s),
                                         problem).first_wrong_step
          for s in range(40)}
  assert seen == set(range(problem.num_steps))
  with pytest.raises(ValueError):
    synthetic.make_flawed_solution(np.random.default_rng(0), problem,
                                   error_step=problem.num_steps)


def test_extract_boxed():
  assert synthetic.extract_boxed('x \\boxed{\\frac{1}{2}} y') == '\\frac{1}{2}'
  assert synthetic.extract_boxed('\\boxed{1} then \\boxed{23}') == '23'
  assert synthetic.extract_boxed('\\boxed{{a}{b}}') == '{a}{b}'
  assert synthetic.extract_boxed('no box here') is None
  assert synthetic.extract_boxed('\\boxed{4} and \\boxed{5') is None
  assert synthetic.extract_boxed('\\boxed{}') == ''


def test_split_steps():
  text = '1+2=3\n\n3*2=6\n \n\n6-1=5\n\\boxed{5}\n'
  assert synthetic.split_steps(text) == ['1+2=3', '3*2=6', '6-1=5\n\\boxed{5}']
  assert synthetic.split_steps('') == []


def test_length_and_charset():
  config = synthetic.ArithmeticConfig(num_steps=4)
  allowed = set(string.printable) - set('\t\r\x0b\x0c')
  lengths = []
  for problem in synthetic.generate_dataset(0, 500, config):
    text = synthetic.format_prompt(problem) + problem.solution
    assert set(text) <= allowed, text
    lengths.append(len(text))
  assert 110 <= np.mean(lengths) <= 180
  assert max(lengths) <= 210
  bare = synthetic.generate_dataset(
      0, 100, synthetic.ArithmeticConfig(word_problem=False))
  assert all(p.question.startswith('Start at ') for p in bare)
  assert np.mean([len(p.question) + len(p.solution) for p in bare]) < np.mean(
      lengths)


def test_difficulty_knobs_change_distribution():
  def steps_and_len(**kw):
    problems = synthetic.generate_dataset(
        0, 100, synthetic.ArithmeticConfig(**kw))
    return ({len(p.steps) for p in problems},
            np.mean([len(p.solution) for p in problems]))

  lengths = []
  for k in (1, 2, 4, 6):
    num_steps, length = steps_and_len(num_steps=k)
    assert num_steps == {k}
    lengths.append(length)
  assert lengths == sorted(lengths)

  only_mul = synthetic.generate_dataset(
      0, 50, synthetic.ArithmeticConfig(ops=('*',)))
  assert {op for p in only_mul for op in p.ops} == {'*'}
  big = synthetic.generate_dataset(0, 50, synthetic.ArithmeticConfig(
      min_operand=10, max_operand=99, modulus=None))
  assert min(min(p.operands) for p in big) >= 10
  assert any(p.answer.startswith('-') for p in synthetic.generate_dataset(
      0, 100, synthetic.ArithmeticConfig(modulus=None, ops=('-',))))


def test_config_validation():
  with pytest.raises(ValueError):
    synthetic.ArithmeticConfig(num_steps=0)
  with pytest.raises(ValueError):
    synthetic.ArithmeticConfig(ops=('/',))
  with pytest.raises(ValueError):
    synthetic.ArithmeticConfig(modulus=1)
  with pytest.raises(ValueError):
    synthetic.ArithmeticConfig(min_operand=5, max_operand=4)


def test_to_jsonl_records():
  problems = synthetic.generate_dataset(0, 3, synthetic.ArithmeticConfig())
  records = synthetic.to_jsonl_records(problems)
  lines = [json.dumps(r) for r in records]
  back = [json.loads(line) for line in lines]
  assert [r['solution'] for r in back] == [p.solution for p in problems]
  assert set(back[0]) == {'question', 'solution', 'answer', 'steps'}
  assert back[0]['steps'] == list(problems[0].steps)
