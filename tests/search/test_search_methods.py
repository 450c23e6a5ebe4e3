"""Search methods on the synthetic task with a scripted policy.

The scripted generator (search_testlib) writes each step correctly with a
fixed probability, so which candidates are right is known, and it tallies
the tokens it generated, so the methods' budgets can be checked against it.
"""

import numpy as np
import pytest

from jaxreason.data import synthetic
from jaxreason.search import beam, best_of_n, dvts
from jaxreason.search.budget import Budget
from jaxreason.search.common import Candidate, SearchResult
from jaxreason.verifiers import Judgement, OracleVerifier

from search_testlib import CountingVerifier, ScriptedGenerator

PROBLEMS = synthetic.generate_dataset(
    0, 24, synthetic.ArithmeticConfig(word_problem=False))
QUESTIONS = [p.question for p in PROBLEMS]
PROMPTS = [synthetic.format_prompt(p) for p in PROBLEMS]


def _run(method, gen, verifier, n, **kw):
  if method == 'beam':
    return beam.beam_search(gen, verifier, QUESTIONS, PROMPTS, n, width=4,
                            **kw)
  if method == 'dvts':
    return dvts.dvts(gen, verifier, QUESTIONS, PROMPTS, n, width=4, **kw)
  return best_of_n.best_of_n(gen, verifier, QUESTIONS, PROMPTS, n,
                             select=method, **kw)


def _correct(answer, p):
  return answer is not None and answer.strip() == p.answer


@pytest.mark.parametrize('method', ['beam', 'dvts'])
def test_oracle_guided_search_finds_the_right_answer(method):
  gen = ScriptedGenerator(PROBLEMS, p_correct=0.4, seed=1)
  results = _run(method, gen, OracleVerifier(), 8)
  for r, p in zip(results, PROBLEMS):
    # A wrong chain can reach the right residue mod 10 by chance; the oracle
    # scores such a candidate 0, so the claim is about correct solutions.
    solved = any(c.finished and synthetic.check_solution(p, c.text)
                 .first_wrong_step == -1 and _correct(c.answer, p)
                 for c in r.candidates)
    if solved:
      assert _correct(r.answer, p), r.as_dict()
    if _correct(r.answer, p):
      assert any(c.finished and c.answer == r.answer for c in r.candidates)
  # Stepwise pruning finds the chain that 8 whole samples rarely contain
  # (each holds all 5 right steps with probability 0.4^4).
  accuracy = np.mean([_correct(r.answer, p) for r, p in zip(results,
                                                            PROBLEMS)])
  bon = _run('best', ScriptedGenerator(PROBLEMS, 0.4, seed=1),
             OracleVerifier(), 8)
  bon_accuracy = np.mean([_correct(r.answer, p) for r, p in zip(bon,
                                                                PROBLEMS)])
  assert accuracy > bon_accuracy + 0.3, (accuracy,
                                                             bon_accuracy)


@pytest.mark.parametrize('method', ['best', 'weighted', 'majority', 'beam',
                                    'dvts'])
@pytest.mark.parametrize('n', [1, 4, 8])
def test_budget_adds_up(method, n):
  gen = ScriptedGenerator(PROBLEMS, p_correct=0.6, seed=n)
  verifier = CountingVerifier(OracleVerifier(), tokens=5)
  kw = {'lookahead': 1} if method == 'beam' else {}
  results = _run(method, gen, verifier, n, **kw)
  for r, prompt, q in zip(results, PROMPTS, QUESTIONS):
    assert r.budget.policy_tokens == gen.tokens[prompt]
    assert r.budget.prompt_tokens == len(prompt) == gen.prompt_tokens[prompt]
    assert r.budget.verifier_tokens == verifier.spent[q]
    assert r.budget.tokens == (gen.tokens[prompt] + len(prompt)
                               + verifier.spent[q])
    assert r.budget.policy_flops == r.budget.policy_tokens + len(prompt)
    # Never more than N rows of a problem at once, never more than N done.
    assert gen.max_rows[prompt] <= n
    assert sum(c.finished for c in r.candidates) <= n
  total = sum((r.budget for r in results), Budget())
  assert total.policy_tokens == sum(gen.tokens.values())
  assert total.verifier_tokens == sum(verifier.spent.values())


def test_beam_stops_once_n_beams_finished():
  gen = ScriptedGenerator(PROBLEMS, p_correct=1.0)
  n = 8
  results = _run('beam', gen, OracleVerifier(), n)
  for r, p in zip(results, PROBLEMS):
    # Every beam finishes after num_steps + 1 steps; none is ever added.
    assert r.info['finished'] == n and r.info['iterations'] == p.num_steps + 1
    # The same work as N whole samples (plus nothing).
    assert r.budget.policy_tokens == n * (len(p.solution) + 1)
    assert r.answer == p.answer


def test_finished_beams_ranked_by_score_not_order():

  class LongIsRight:
    """Scores 1 only for solutions with the full, correct chain."""

    def judge(self, questions, steps):
      return OracleVerifier().judge(questions, steps)

  # Rows that box early (wrong, finished first) must lose to later ones.
  p = PROBLEMS[0]
  early = f'\\boxed{{{(int(p.answer) + 3) % 10}}}'

  class EarlyBoxGen(ScriptedGenerator):
    def _step(self, row):
      if row[3] == 0 and self.rng.random() < 0.5 and row[1] == '':
        row[3] = 99
        return early, 'eos'
      return super()._step(row)

  gen = EarlyBoxGen([p], p_correct=1.0, seed=3)
  [r] = beam.beam_search(gen, LongIsRight(), [p.question],
                         [synthetic.format_prompt(p)], 8, width=2)
  assert any(c.answer == early[7:-1] for c in r.candidates)
  assert r.answer == p.answer
  assert r.candidates[0].answer == p.answer  # Ranked first.


class FlakyVerifier:
  """No score for every other candidate, and raises on some questions."""

  def __init__(self):
    self.calls = 0

  def judge(self, questions, steps):
    if any(q == QUESTIONS[0] for q in questions) and len(questions) > 1:
      raise RuntimeError('verifier crashed')
    out = []
    for q, s in zip(questions, steps):
      self.calls += 1
      if q == QUESTIONS[0]:
        raise RuntimeError('cannot judge this one')
      if self.calls % 2:
        out.append(Judgement(None, info={'error': 'unparsable verdict'}))
      else:
        out.append(OracleVerifier().judge([q], [s])[0])
    return out


@pytest.mark.parametrize('method', ['best', 'weighted', 'beam', 'dvts'])
def test_unscored_candidates_do_not_stop_the_search(method):
  gen = ScriptedGenerator(PROBLEMS, p_correct=0.7, seed=2)
  results = _run(method, gen, FlakyVerifier(), 4)
  assert len(results) == len(PROBLEMS)
  first = results[0]
  assert all(c.score is None for c in first.candidates)
  if method in ('best', 'weighted'):
    assert 'fallback' in first.info
  for r in results:
    done = [c.answer for c in r.candidates if c.finished]
    assert r.answer is None or r.answer in done
    assert any(c.score is None for c in r.candidates) or r is not first


@pytest.mark.parametrize('method', ['best', 'weighted', 'majority', 'beam',
                                    'dvts'])
def test_unfinished_candidates_are_never_answers(method):
  gen = ScriptedGenerator(PROBLEMS, p_correct=1.0, max_new_tokens=12)
  results = _run(method, gen, OracleVerifier(), 4)
  for r in results:
    assert r.answer is None
    assert not any(c.finished for c in r.candidates)
  # The beam search also stops at max_iterations with live beams.
  gen = ScriptedGenerator(PROBLEMS, p_correct=1.0)
  for r in beam.beam_search(gen, OracleVerifier(), QUESTIONS, PROMPTS, 4,
                            max_iterations=2):
    assert r.answer is None and r.info['unfinished_live'] > 0


def test_aggregation_is_the_one_asked_for_and_recorded():
  gen = ScriptedGenerator(PROBLEMS, p_correct=0.7, seed=4)
  results = _run('weighted', gen, OracleVerifier(), 8, aggregation='mean')
  for r in results:
    assert r.aggregation == 'mean'
    for c in r.candidates:
      assert c.score == pytest.approx(np.mean(c.step_scores))


def test_votes_group_grader_equal_answers():
  """'1/2' and '0.5' are one answer to every vote (search.voting)."""
  def cand(answer, score, finished=True):
    return Candidate('', finished=finished, answer=answer, score=score,
                     step_scores=(score,))
  cands = [cand('3', 0.9), cand('1/2', 0.5), cand('0.5', 0.5),
           cand('7', 5.0, finished=False)]  # Unfinished: never an answer.
  result = SearchResult('best_of_n', None, cands, Budget(), 'last')
  assert best_of_n.reselect(result, 'majority').answer == '1/2'
  assert best_of_n.reselect(result, 'weighted').answer == '1/2'  # 1.0 > 0.9
  assert best_of_n.reselect(result, 'best').answer == '3'
  # Grouped by exact text only, '3' would win the weighted vote (0.9 > 0.5).
  cands[1].answer = '2/3'
  assert best_of_n.reselect(result, 'weighted').answer == '3'


def test_reselect_reuses_the_samples():
  gen = ScriptedGenerator(PROBLEMS, p_correct=0.6, seed=5)
  verifier = CountingVerifier(OracleVerifier(), tokens=3)
  best = _run('best', gen, verifier, 6, aggregation='min')
  for select in ('weighted', 'majority'):
    fresh = _run(select, ScriptedGenerator(PROBLEMS, 0.6, seed=5),
                 CountingVerifier(OracleVerifier(), tokens=3), 6,
                 aggregation='min')
    for r, f in zip(best, fresh):
      again = best_of_n.reselect(r, select)
      assert (again.method, again.answer) == (f.method, f.answer)
      assert again.budget == f.budget
