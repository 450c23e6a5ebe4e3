"""Outcome and ranking reward models: one score from the last token.

An ORM (trained with `losses.reward.outcome_loss`) or a Qwen2.5-Math-style
ranking RM (`losses.reward.ranking_loss`) is the same `RewardModel` as a
PRM, read at one position: the last token of the solution (its final
separator). `OutcomeRM.judge` returns that one score as a one-element
`step_scores`, so `aggregate(..., 'last')` is the outcome score and
best-of-N selection treats ORMs and PRMs alike. (A ranking RM's score is a
logit on no fixed scale; sigmoid keeps it in (0, 1) and keeps its order.)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxreason.train import run_config
from jaxreason.verifiers.base import Judgement
from jaxreason.verifiers.prm import DiscriminativePRM, load_prm


class OutcomeRM(DiscriminativePRM):
  """A `Verifier` whose judgement is one score for the whole solution."""

  @classmethod
  def from_prm(cls, prm: DiscriminativePRM) -> 'OutcomeRM':
    """The same model and encoding, read at the last token only."""
    out = cls.__new__(cls)
    out.__dict__.update(prm.__dict__)
    return out

  def judge(self, questions: Sequence[str],
            steps: Sequence[Sequence[str]]) -> list[Judgement]:
    encoded, logits = self.encode_and_score(questions, steps)
    out = []
    for e, lg, st in zip(encoded, logits, steps):
      info = {'outcome': True}
      if e['num_steps_kept'] < len(st):  # Cut at max_len: scored the prefix.
        info['unscored_steps'] = len(st) - e['num_steps_kept']
      score = 1.0 / (1.0 + np.exp(-float(lg[-1])))
      out.append(Judgement(step_scores=(score,), tokens=len(e['tokens']),
                           info=info))
    return out


def load_verifier(workdir: str, *, outcome: bool | None = None,
                  **kwargs) -> DiscriminativePRM:
  """A `recipes.prm` workdir's model as a PRM or, for objective 'orm' /
  'ranking' (or `outcome=True`), an `OutcomeRM`. kwargs go to `load_prm`."""
  prm = load_prm(workdir, **kwargs)
  if outcome is None:
    outcome = run_config.load_run_config(workdir).get('objective') != 'prm'
  return OutcomeRM.from_prm(prm) if outcome else prm
