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
