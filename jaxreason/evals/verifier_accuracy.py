"""How well a verifier's judgements match gold step labels.

  metrics = verifier_accuracy(verifier.judge(questions, steps), step_labels)

For solutions with known labels (the synthetic task's flawed and correct
solutions): per-step verdict accuracy (a step is predicted correct when its
score is >= 0.5; no score counts as wrong), the same up to and including
the first wrong step (the steps ThinkPRM's filter checks), first-error
accuracy (`Judgement.first_error` equal to the gold index, -1 for correct
solutions, None wrong), ProcessBench's accuracy on erroneous and on correct
solutions and their harmonic mean, and P(yes) against the outcome when the
judgements carry one (`info['p_yes']`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from jaxreason.verifiers.base import Judgement


def first_error_of(labels: Sequence[bool]) -> int:
  return list(labels).index(False) if False in labels else -1


def verifier_accuracy(judgements: Sequence[Judgement],
                      step_labels: Sequence[Sequence[bool]],
                      threshold: float = 0.5) -> dict[str, Any]:
  """Metrics of judgements against gold labels (one list per solution)."""
  if len(judgements) != len(step_labels):
    raise ValueError(f'{len(judgements)} judgements, {len(step_labels)} '
                     'label lists')
  step_hits, prefix_hits, first_hits = [], [], []
  err_hits, ok_hits, p_yes, outcome = [], [], [], []
  for j, labels in zip(judgements, step_labels):
    gold_first = first_error_of(labels)
    stop = gold_first if gold_first >= 0 else len(labels) - 1
    for i, gold in enumerate(labels):
      s = None if j.step_scores is None else j.step_scores[i]
      hit = s is not None and not math.isnan(s) and (s >= threshold) == gold
      step_hits.append(hit)
      if i <= stop:
        prefix_hits.append(hit)
    first_hit = j.first_error is not None and j.first_error == gold_first
    first_hits.append(first_hit)
    (err_hits if gold_first >= 0 else ok_hits).append(first_hit)
    if 'p_yes' in j.info:
      p_yes.append(j.info['p_yes'])
      outcome.append((j.info['p_yes'] >= 0.5) == (gold_first < 0))
  mean = lambda x: float(np.mean(x)) if x else float('nan')
  acc_err, acc_ok = mean(err_hits), mean(ok_hits)
  both = [a for a in (acc_err, acc_ok) if not math.isnan(a)]
  f1 = (0.0 if len(both) < 2 or acc_err + acc_ok == 0 else
        2 * acc_err * acc_ok / (acc_err + acc_ok))
  labels_ok = [first_error_of(l) < 0 for l in step_labels]
  out = {
      'num_solutions': len(judgements),
      'num_erroneous': len(err_hits), 'num_correct': len(ok_hits),
      'step_accuracy': mean(step_hits),
      'step_accuracy_to_first_error': mean(prefix_hits),
      'first_error_accuracy': mean(first_hits),
      'acc_erroneous': acc_err, 'acc_correct': acc_ok, 'f1': f1,
      'unscored': mean([j.step_scores is None for j in judgements]),
      'first_error_unparsable': mean([j.first_error is None
                                      for j in judgements]),
      'mean_tokens': mean([j.tokens for j in judgements]),
  }
  if p_yes:
    out['outcome_accuracy'] = mean(outcome)
    out['p_yes_correct'] = mean([p for p, ok in zip(p_yes, labels_ok) if ok])
    out['p_yes_erroneous'] = mean([p for p, ok in zip(p_yes, labels_ok)
                                   if not ok])
  return out
