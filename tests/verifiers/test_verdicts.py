"""Verdict parsing on tricky chains: wrappers, prose, missing verdicts."""

from jaxreason.verifiers import verdicts as v


def test_plain_chain_and_final_index():
  chain = ('Step 0: 8-5=3 vs 8-5=3 \\boxed{correct}\n'
           'Step 1: 3+3=6 vs 3+3=7 \\boxed{incorrect}\n'
           'Step 2: 6*2=2 vs 7*2=4 \\boxed{incorrect}\n'
           'First error: \\boxed{1}')
  assert v.parse_verdicts(chain, 3) == (True, False, False)
  assert v.parse_final_index(chain) == 1
  assert v.first_error_from_verdicts((True, False, False)) == 1


def test_latex_wrappers_case_and_spaces():
  chain = ('Step 0 \\boxed{\\text{correct}}. Step 1 \\boxed{ \\textbf{Incorrect} }'
           ' Step 2 \\boxed{$\\mathrm{correct}$.}')
  assert v.parse_verdicts(chain, 3) == (True, False, True)
  assert v.parse_final_index(chain) is None  # No boxed integer.


def test_verdicts_in_prose_name_their_step():
  chain = ('Looking again, Step 2 is \\boxed{correct}, while step 0 is '
           '\\boxed{incorrect}. Paragraph 1 seems \\boxed{\\text{correct}}.')
  assert v.parse_verdicts(chain, 3) == (False, True, True)
  # One-based numbering ("Step 1" is the first step).
  assert v.parse_verdicts('Step 1 is \\boxed{incorrect}', 2,
                          first_step=1) == (False, None)


def test_unnamed_verdicts_follow_the_previous_one():
  chain = ('Step 1: \\boxed{correct} then \\boxed{incorrect} and '
           '\\boxed{correct}')
  assert v.parse_verdicts(chain, 4) == (None, True, False, True)


def test_missing_and_garbage_never_crash():
  assert v.parse_verdicts('', 3) == (None, None, None)
  assert v.parse_verdicts('Step 0 looks fine. \\boxed{maybe}', 2) == (None,
                                                                      None)
  truncated = 'Step 0: \\boxed{correct}\nStep 1: \\boxed{incor'
  assert v.parse_verdicts(truncated, 2) == (True, None)
  assert v.parse_final_index(truncated) is None
  assert v.parse_verdicts('Step 7 is \\boxed{correct}', 2) == (None, None)
  assert v.parse_final_index('\\boxed{-1} text \\boxed{correct}') == -1
  assert v.parse_final_index('\\boxed{2} then \\boxed{\\text{3}}') == 3
  assert v.parse_final_index('answer \\boxed{x}') is None
  assert v.first_error_from_verdicts((True, None, False)) is None
  assert v.first_error_from_verdicts((True, True)) == -1


def test_later_verdict_overrides_earlier():
  chain = ('Step 0 \\boxed{correct} Step 1 \\boxed{correct}\n'
           "Let's verify again.\nStep 0 \\boxed{correct} "
           'Step 1 \\boxed{incorrect}\nFirst error: \\boxed{1}')
  assert v.parse_verdicts(chain, 2) == (True, False)
  assert v.parse_final_index(chain) == 1


def test_verdicts_match_up_to_first_wrong_step():
  gold = (True, False, False)
  assert v.verdicts_match((True, False, None), gold)  # After: ignored.
  assert v.verdicts_match((True, False, True), gold)
  assert not v.verdicts_match((True, True, False), gold)
  assert not v.verdicts_match((None, False, False), gold)
  assert v.verdicts_match((True, True), (True, True))
  assert not v.verdicts_match((True, None), (True, True))
  assert not v.verdicts_match((True,), (True, True))
