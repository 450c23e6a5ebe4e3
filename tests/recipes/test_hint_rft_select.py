"""Hint-RFT's selection: hinted right where plain is wrong, no repeats."""

import pytest

from jaxreason.reasoning.tir import Trajectory
from jaxreason.recipes import hint_rft


def _traj(text, prompt='Q\n'):
  return Trajectory(prompt, text, ((text, 'model'),), (), (), len(text), 'eos')


def test_select_keeps_hint_wins_and_drops_repetitive_and_duplicates():
  plain = [_traj('\\boxed{1}'), _traj('\\boxed{9}'), _traj('\\boxed{9}'),
           _traj('\\boxed{9}'), _traj('\\boxed{9}'), _traj('\\boxed{9}')]
  hinted = [_traj('\\boxed{1}'),  # Plain already right: not a hint win.
            _traj('so \\boxed{2}'),  # Kept.
            _traj('\\boxed{8}'),  # Hinted wrong too.
            _traj('go go go go go go go go go go \\boxed{4}'),  # Repetitive.
            _traj('so \\boxed{2}'),  # A duplicate of row 1 (same prompt).
            _traj('so \\boxed{2}', prompt='R\n')]  # Same text, other prompt.
  answers = ['1', '2', '2', '4', '2', '2']
  index, counts = hint_rft.select(plain, hinted, answers, keep='hint_wins',
                                  ngram=2, max_repetition=0.3)
  assert index == [1, 5]
  assert counts == {'candidates': 6, 'kept_rule': 4, 'repetitive': 1,
                    'duplicates': 1, 'kept': 2}
  index, _ = hint_rft.select(plain, hinted, answers, keep='hinted_correct',
                             ngram=2, max_repetition=0.3)
  assert index == [0, 1, 5]
  rows = hint_rft.sft_rows(hinted, answers, index)
  assert rows[1] == {'prompt': 'Q\n', 'completion': 'so \\boxed{2}',
                     'answer': '2'}
  with pytest.raises(ValueError, match='filter.keep'):
    hint_rft.select(plain, hinted, answers, keep='best', ngram=2,
                    max_repetition=0.3)
