"""verifier_accuracy against a hand computation."""

import math

import pytest

from jaxreason.evals.verifier_accuracy import verifier_accuracy
from jaxreason.verifiers import Judgement


def test_hand_computed_metrics():
  labels = [(True, False, False), (True, True), (False, False), (True,)]
  judgements = [
      # Steps: right, right, wrong (0.4 < 0.5 called incorrect -> hit? no:
      # gold False, predicted False -> hit). First error right.
      Judgement((1.0, 0.0, 0.4), 1, 10, {'p_yes': 0.2}),
      # Calls step 1 wrong; first error wrong (gold -1).
      Judgement((1.0, 0.0), 1, 20, {'p_yes': 0.7}),
      # Unscored; first error unparsable.
      Judgement(None, None, 30, {'p_yes': 0.6}),
      # NaN score counts as a miss; first error right (-1).
      Judgement((float('nan'),), -1, 40, {'p_yes': 0.9}),
  ]
  m = verifier_accuracy(judgements, labels)
  # Step hits: [T, T, T], [T, F], [F, F], [F] -> 4 / 8.
  assert m['step_accuracy'] == pytest.approx(4 / 8)
  # Up to the first wrong step: [T, T], [T, F], [F], [F] -> 3 / 6.
  assert m['step_accuracy_to_first_error'] == pytest.approx(3 / 6)
  assert m['first_error_accuracy'] == pytest.approx(2 / 4)
  assert m['acc_erroneous'] == pytest.approx(1 / 2)
  assert m['acc_correct'] == pytest.approx(1 / 2)
  assert m['f1'] == pytest.approx(0.5)
  assert m['unscored'] == 0.25 and m['first_error_unparsable'] == 0.25
  assert m['mean_tokens'] == 25
  # Outcome: p>=.5 vs all-correct: [F==F, T==T, T==F, T==T] -> 3 / 4.
  assert m['outcome_accuracy'] == pytest.approx(3 / 4)
  assert m['p_yes_correct'] == pytest.approx(0.8)
  assert m['p_yes_erroneous'] == pytest.approx(0.4)


def test_f1_zero_when_both_accuracies_zero():
  m = verifier_accuracy([Judgement((1.0,), -1), Judgement((0.0,), 0)],
                        [(False,), (True,)])
  assert m['acc_erroneous'] == 0 and m['acc_correct'] == 0 and m['f1'] == 0
  assert math.isnan(verifier_accuracy([], [])['step_accuracy'])
