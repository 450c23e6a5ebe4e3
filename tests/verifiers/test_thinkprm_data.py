"""ThinkPRM data: the chain filter on handmade cases, the stand-in teacher."""

import numpy as np
import pytest

from jaxreason.data import synthetic
from jaxreason.verifiers import thinkprm_data as td
from jaxreason.verifiers import verdicts

TASK = synthetic.ArithmeticConfig(num_steps=3, word_problem=False)


def _chain(*verdict_words, final=None):
  lines = [f'Step {i}: x \\boxed{{{w}}}' for i, w in enumerate(verdict_words)]
  if final is not None:
    lines.append(f'First error: \\boxed{{{final}}}')
  return '\n'.join(lines)


@pytest.mark.parametrize('chain,gold,max_length,keep,reason', [
    # Matches up to and including the first wrong step; later ones ignored.
    (_chain('correct', 'incorrect', 'correct'), (True, False, False), None,
     True, 'kept'),
    (_chain('correct', 'incorrect'), (True, False, False), None, True, 'kept'),
    # Calls the wrong step correct / a right step incorrect.
    (_chain('correct', 'correct', 'incorrect'), (True, False, False), None,
     False, 'mismatch'),
    (_chain('incorrect', 'incorrect', 'incorrect'), (True, False, False),
     None, False, 'mismatch'),
    # All-correct solution: every step must be called correct.
    (_chain('correct', 'correct', 'correct'), (True, True, True), None, True,
     'kept'),
    (_chain('correct', 'correct'), (True, True, True), None, False,
     'mismatch'),
    ('no verdicts at all', (True, True), None, False, 'mismatch'),
    # Too long, even when right.
    (_chain('correct', 'incorrect'), (True, False), 10, False, 'too_long'),
    (_chain('correct', 'incorrect'), (True, False), 200, True, 'kept'),
])
def test_filter_keeps_and_drops_exactly(chain, gold, max_length, keep,
                                        reason):
  res = td.filter_chain(chain, gold, max_length=max_length)
  assert (res.keep, res.reason) == (keep, reason)


def test_filter_length_in_tokens():
  chain = _chain('correct')
  assert td.filter_chain(chain, (True,), max_length=3,
                         length_fn=lambda s: len(s.split())).keep is False
  assert td.filter_chain(chain, (True,), max_length=4,
                         length_fn=lambda s: len(s.split())).keep is True


def test_exact_teacher_chain_matches_check_step():
  rng = np.random.default_rng(0)
  problems = synthetic.generate_dataset(0, 40, TASK)
  sols = td.labelled_solutions(problems, rng, flawed_prob=0.6,
                               prefix_prob=0.3)
  assert any(s.first_error >= 0 for s in sols)
  assert any(s.first_error < 0 for s in sols)
  for p, s in zip(problems, sols):
    chain = td.arithmetic_chain(p, s.steps, rng, slip_prob=0.0)
    v = verdicts.parse_verdicts(chain, len(s.steps))
    assert v == s.step_correct, (chain, s)
    assert verdicts.parse_final_index(chain) == s.first_error


def test_synthesize_keeps_only_matching_chains():
  problems = synthetic.generate_dataset(1, 60, TASK)
  sols = td.labelled_solutions(problems, np.random.default_rng(1))
  teacher = td.noisy_arithmetic_teacher({p.question: p for p in problems},
                                        slip_prob=0.3)
  records, stats = td.synthesize(sols, teacher, num_chains=3, batch_size=16)
  assert stats['chains'] == 180
  assert stats['kept'] == len(records)
  assert stats['kept'] + stats['mismatch'] + stats['too_long'] == 180
  assert 0.1 < stats['keep_rate'] < 0.95  # The noisy teacher errs.
  assert stats['step_labels'] == sum(len(s.steps) for s in sols)
  by_prompt = {td.verifier_prompt(s.question, s.steps): s for s in sols}
  for r in records:
    s = by_prompt[r['prompt']]
    chain, tail = r['completion'].split(td.CHAIN_END)
    assert tail == (td.YES if all(s.step_correct) else td.NO)
    assert verdicts.verdicts_match(verdicts.parse_verdicts(chain, len(s.steps)),
                                   s.step_correct)
  # A length limit below every chain drops them all.
  _, short = td.synthesize(sols[:5], teacher, num_chains=2, max_length=20)
  assert short['kept'] == 0 and short['too_long'] == 10


def test_prompt_and_chain_format_spelled_out():
  """The tagged prompt and 'written redo recomputed' lines, written by hand
  from the problem's reference steps (not by the code under test)."""
  problem = synthetic.generate_dataset(5, 1, TASK)[0]
  ref = list(problem.steps)  # 3 reference steps, answer problem.answer.
  flawed = synthetic.make_flawed_solution(np.random.default_rng(0), problem,
                                          error_step=1, error_kind='result')
  steps = list(flawed.steps) + ['\\boxed{%s}' % flawed.answer]
  assert td.verifier_prompt(problem.question, steps) == (
      f'{problem.question}\nStep 0: {steps[0]}\nStep 1: {steps[1]}\n'
      f'Step 2: {steps[2]}\nStep 3: {steps[3]}\nVerification:\n')
  chain = td.arithmetic_chain(problem, steps, np.random.default_rng(0))
  assert chain.split('\n') == [
      f'Step 0: {ref[0]} redo {ref[0]} \\boxed{{correct}}',
      f'Step 1: {steps[1]} redo {ref[1]} \\boxed{{incorrect}}',
      f'Step 2: {steps[2]} redo {ref[2]} \\boxed{{incorrect}}',
      f'Step 3: \\boxed{{{flawed.answer}}} redo \\boxed{{{problem.answer}}} '
      f'\\boxed{{{"correct" if flawed.answer == problem.answer else "incorrect"}}}',
      'First error: \\boxed{1}']
  assert verdicts.parse_verdicts(chain, 4)[:3] == (True, False, False)


def test_labelled_solutions_include_the_boxed_answer():
  problems = synthetic.generate_dataset(2, 50, TASK)
  sols = td.labelled_solutions(problems, np.random.default_rng(2),
                               flawed_prob=0.5)
  for p, s in zip(problems, sols):
    assert len(s.steps) == 4 and s.steps[3].startswith('\\boxed{')
    if s.first_error < 0:
      assert s.steps == tuple(p.steps) + ('\\boxed{%s}' % p.answer,)
      assert s.step_correct == (True,) * 4
    else:  # Everything from the first wrong step on is wrong.
      assert s.first_error < 3
      assert s.step_correct == tuple(i < s.first_error for i in range(4))


def test_error_step_decay_moves_errors_early():
  problems = synthetic.generate_dataset(3, 600, TASK)
  def share_at_0(decay):
    sols = td.labelled_solutions(problems, np.random.default_rng(3),
                                 flawed_prob=1.0, error_step_decay=decay)
    return np.mean([s.first_error == 0 for s in sols])
  # Uniform over 3 steps: 1/3; decay 0.25: 1 / (1 + .25 + .0625) = 0.76.
  assert abs(share_at_0(1.0) - 1 / 3) < 0.07
  assert abs(share_at_0(0.25) - 1 / 1.3125) < 0.07
  for bad in (0.0, 1.5):
    with pytest.raises(ValueError, match='error_step_decay'):
      td.labelled_solutions(problems[:2], np.random.default_rng(0),
                            error_step_decay=bad)
