r"""Majority and weighted voting (jaxreason.search) on handmade cases."""

import math

import pytest

from jaxreason import search
from jaxreason.search import voting


def test_equivalent_forms_are_one_vote():
  # Three forms of one half outvote two 3s (exact strings would say '3').
  answers = ['3', '0.5', '3', '1/2', '\\frac{1}{2}', None, None, None]
  assert search.majority_vote(answers) == '0.5'
  assert voting.answer_classes(answers) == [0, 1, 0, 1, 1, None, None, None]


def test_none_is_ignored_and_all_none_gives_none():
  assert search.majority_vote([None, '7', None, None]) == '7'
  assert search.majority_vote([None, None]) is None
  assert search.majority_vote([]) is None
  assert search.majority_vote(['', '  ', None]) is None


def test_ties_go_to_the_class_seen_first_and_keep_its_spelling():
  assert search.majority_vote(['2', '3', '3', '2']) == '2'
  assert search.majority_vote(['3', '2', '2', '3']) == '3'
  # The winning class is returned as its first member is written.
  assert search.majority_vote(['4', '\\dfrac{1}{2}', '0.5', '4', '1/2']) == (
      '\\dfrac{1}{2}')
  assert search.majority_vote([' 025', '25', '7']) == ' 025'


def test_latex_and_plain_equal_answers_group():
  answers = ['x=5', '5', '(1,2)', '\\left(1, 2\\right)', '(1,2)', '5.0']
  # 5 has 3 votes (x=5, 5, 5.0), the pair (1,2) also 3: the first class wins.
  assert voting.answer_classes(answers) == [0, 0, 1, 1, 1, 0]
  assert search.majority_vote(answers) == 'x=5'
  assert search.majority_vote(answers[1:]) == '(1,2)'  # 3 votes to 2.


def test_weighted_vote_sums_scores_over_equivalent_answers():
  # '3' has the best single score, but the two halves add up to more.
  assert search.weighted_vote(['3', '1/2', '0.5'], [0.9, 0.5, 0.5]) == '1/2'
  assert search.weighted_vote(['3', '1/2', '0.5'], [0.9, 0.4, 0.4]) == '3'
  # Majority would say 2.
  assert search.weighted_vote(['2', '2', '9'], [0.1, 0.1, 0.95]) == '9'


def test_weighted_vote_ignores_unscored_and_unanswered():
  answers = ['1', '2', None, '2']
  assert search.weighted_vote(answers, [0.5, None, 0.99, math.nan]) == '1'
  assert search.weighted_vote(answers, [None, None, 1.0, None]) is None
  assert search.weighted_vote([None, None], [0.5, 0.5]) is None
  # An unscored first member does not fix the spelling or the tie order.
  assert search.weighted_vote(['0.5', '2', '1/2'], [None, 0.3, 0.3]) == '2'
  assert search.weighted_vote(['0.5', '3', '1/2'], [None, 0.3, 0.4]) == '1/2'
  with pytest.raises(ValueError, match='3 answers but 2 scores'):
    search.weighted_vote(['1', '2', '3'], [0.1, 0.2])


def test_weighted_vote_ties_and_uniform_scores_equal_majority():
  assert search.weighted_vote(['a', 'b'], [0.5, 0.5]) == 'a'
  assert search.weighted_vote(['b', 'a'], [0.5, 0.5]) == 'b'
  answers = ['3', '0.5', '3', '1/2', '\\frac{1}{2}']
  assert search.weighted_vote(answers, [1.0] * 5) == search.majority_vote(
      answers)


def test_vote_from_classes_counts_each_prefix():
  classes = [0, 1, 1, 0, 0]
  assert voting.vote_from_classes(classes[:1]) == 0
  assert voting.vote_from_classes(classes[:3]) == 1
  assert voting.vote_from_classes(classes[:4]) == 0  # Tie: class 0 first.
  assert voting.vote_from_classes([None, None]) is None
  assert voting.vote_from_classes(classes, [0, 1, 1, 0, 0.5]) == 1


def test_custom_match():
  same_parity = lambda a, b: int(a) % 2 == int(b) % 2
  assert search.majority_vote(['1', '2', '4', '3', '5'],
                              match=same_parity) == '1'
