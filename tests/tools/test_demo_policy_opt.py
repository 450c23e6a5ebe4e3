"""tools/demo_policy_opt.py: the paired change and its table."""

import pathlib

import numpy as np

from jaxreason.file_modules import load_file

REPO = pathlib.Path(__file__).resolve().parents[2]
demo = load_file(REPO / 'tools' / 'demo_policy_opt.py')


def test_paired_change_counts_and_interval():
  before = np.array([1, 1, 0, 0, 0, 1, 0, 0], bool)
  after = np.array([1, 0, 1, 1, 0, 1, 1, 0], bool)
  out = demo.paired_change(before, after, resamples=2000, seed=0)
  # Per-problem differences: 0, -1, +1, +1, 0, 0, +1, 0 -> mean 2/8.
  assert out['change'] == 0.25
  assert (out['fixed'], out['broken']) == (3, 1)
  lo, hi = out['ci95']
  assert -0.25 <= lo < 0.25 < hi <= 0.625  # Bootstrap means lie in [-1/8, 5/8].


def test_summary_rows_and_markdown():
  def ev(correct):
    c = np.asarray(correct)
    return {'accuracy': float(c.mean()), 'ci95': [0.1, 0.9],
            'correct_counts': c.tolist()}
  results = {('grpo', 0): {'eval_before': ev([0, 0, 1, 1]),
                           'eval_after': ev([1, 0, 1, 1]),
                           'wall_sec': 120.0, 'commit': 'abc1234'}}
  rows = demo.summarise(results, resamples=100)
  assert rows[0]['change'] == 0.25 and rows[0]['fixed'] == 1
  table = demo.markdown(rows)
  assert ('| grpo | 0 | 4 | 0.500 (0.100-0.900) | 0.750 (0.100-0.900) | '
          '+0.250' in table)
  assert '| 1 / 0 | 2.0 | abc1234 |' in table
  assert '| grpo | 1 | +0.250 | +0.250 | +0.250 |' in table
