"""Compute-optimal selection on handmade per-problem results."""

import numpy as np
import pytest

from jaxreason.search import compute_optimal as co


def test_difficulty_scores_and_bins():
  assert co.oracle_difficulty([[True, False], [True, True], []]).tolist() == [
      0.5, 1.0, 0.0]
  pred = co.predicted_difficulty([[0.2, None, 0.4], [None], [1.0]])
  assert pred == pytest.approx([0.3, 0.65, 1.0])  # Unscored: the median.
  d = np.arange(10) / 10
  edges = co.bin_edges(d, 2)
  assert co.assign_bins(d, edges).tolist() == [0] * 5 + [1] * 5
  assert co.assign_bins(np.array([0.0, 0.45, 0.9]), edges).tolist() == [
      0, 0, 1]


def test_picks_the_best_method_per_bin_and_beats_each_fixed_one():
  # Hard problems (bin 0): only beam search solves them; easy ones (bin 1):
  # only best-of-N does. Each fixed method gets half; the mix gets all.
  hard, easy = [True] * 4 + [False] * 4, [False] * 4 + [True] * 4
  correct = {'beam_search': {4: hard}, 'best_of_n': {4: easy},
             'greedy': {1: [True] * 2 + [False] * 6}}
  difficulty = np.array([0.1] * 4 + [0.9] * 4)
  report = co.compute_optimal(correct, difficulty, correct, difficulty,
                              num_bins=2)
  assert report['choice']['4'] == ['beam_search', 'best_of_n']
  assert report['choice']['1'] == ['greedy', 'greedy']
  acc = report['test_accuracy']['4']
  assert acc == {'compute_optimal': 1.0, 'beam_search': 0.5,
                 'best_of_n': 0.5}
  assert report['test_accuracy']['1'] == {'compute_optimal': 0.25,
                                          'greedy': 0.25}
  assert report['dev_bin_sizes'] == [4, 4]


def test_empty_bin_takes_the_overall_best():
  correct = {'a': {2: [True, True, False]}, 'b': {2: [False, False, True]}}
  choice = co.select_methods(correct, np.array([0, 0, 0]), num_bins=3)
  assert choice[2] == ['a', 'a', 'a']
  test = co.evaluate(correct, np.array([2, 2, 2]), choice)
  assert test[2]['compute_optimal'] == pytest.approx(2 / 3)
