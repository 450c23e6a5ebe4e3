"""search_eval on a benchmark file (data.source): prompts, grading, methods.

The benchmark is a GSM8K-format file the test writes; the verifier is a
registered stand-in (every method must take any verifier), the policy a
random tiny model: the test checks the plumbing and the grading, not
accuracy.
"""

import json
import pathlib

import pytest

from jaxreason.file_modules import load_config
from jaxreason.recipes import search_eval
from jaxreason.search.common import SearchResult
from jaxreason.search.budget import Budget
from jaxreason.train import run_config
from jaxreason.verifiers.base import Judgement

REPO = pathlib.Path(__file__).resolve().parents[2]
ROWS = [('Tom has 3 apples and eats 1. How many are left?', '2'),
        ('Half of 1 is what?', '0.5'),
        ('What is 10 * 10?', '100'),
        ('What is 7 - 2?', '5'),
        ('What is 9 + 9?', '18')]


def _data_dir(tmp_path, rows=ROWS):
  root = tmp_path / 'data'
  (root / 'gsm8k').mkdir(parents=True)
  with open(root / 'gsm8k' / 'test.jsonl', 'w') as f:
    for q, a in rows:
      f.write(json.dumps({'question': q, 'answer': f'work\n#### {a}'}) + '\n')
  return root


def _config(tmp_path, *variants):
  config = load_config(REPO / 'configs/search_eval/benchmark.py',
                       ','.join(('gsm8k', 'debug') + variants))
  config.data.data_dir = str(_data_dir(tmp_path))
  return config


class _StepCount:
  """Scores each step 1 / (1 + its index): a deterministic stand-in."""

  def judge(self, questions, steps):
    assert len(questions) == len(steps)
    return [Judgement(tuple(1.0 / (1 + i) for i in range(len(s))) or None,
                      tokens=len(s)) for s in steps]


def test_eval_set_uses_the_chat_prompt_and_the_grader(tmp_path):
  config = _config(tmp_path)
  tokenizer = run_config.tokenizer_from_config(config.tokenizer)
  evals = search_eval.load_eval_set(config, tokenizer)
  assert evals.ids == ['test/0', 'test/1', 'test/2', 'test/3']  # num_eval 4.
  assert evals.golds == ['2', '0.5', '100', '5']
  assert evals.synthetic_problems == []
  for text, (question, _) in zip(evals.prompts, ROWS):
    assert question in text and text != question  # Chat-templated.
  # The grader, not string equality: 1/2 is 0.5; the robust extractor.
  found = lambda answer: SearchResult('x', answer, [], Budget())
  assert evals.correct(found('1/2'), 1) and not evals.correct(found('2'), 1)
  assert evals.correct(found('100.0'), 2)
  assert not evals.correct(found(None), 0)
  assert evals.extract('so the answer is \\boxed{7}.') == '7'


def test_unencodable_prompt_is_named_or_skipped(tmp_path):
  config = _config(tmp_path)
  config.data.data_dir = str(_data_dir(
      tmp_path / 'u', [('Tom has 3 \u20ac. Half?', '1.5')] + ROWS))
  config.unencodable = 'error'
  tokenizer = run_config.tokenizer_from_config(config.tokenizer)
  with pytest.raises(ValueError, match='gsm8k problem test/0'):
    search_eval.load_eval_set(config, tokenizer)
  config.unencodable = 'skip'
  evals = search_eval.load_eval_set(config, tokenizer)
  assert evals.ids == ['test/1', 'test/2', 'test/3']  # First 4, one left out.


def test_oracle_verifier_needs_the_synthetic_task(tmp_path):
  config = _config(tmp_path)
  config.verifier.kind = 'oracle'
  with pytest.raises(ValueError, match="a benchmark .* has no step checker"):
    search_eval.run(config, str(tmp_path / 'out'))


@pytest.mark.slow
def test_every_method_runs_on_a_benchmark(tmp_path, monkeypatch):
  monkeypatch.setitem(search_eval.VERIFIERS, 'steps',
                      lambda cfg, problems: _StepCount())
  config = _config(tmp_path)
  config.verifier.kind = 'steps'
  config.methods = search_eval.METHODS
  result = search_eval.run(config, str(tmp_path / 'out'))
  assert result['source'] == 'gsm8k' and result['num_problems'] == 4
  saved = json.loads((tmp_path / 'out' / search_eval.RESULTS_FILE).read_text())
  assert set(saved['summary']) == set(config.methods)
  for method, by_n in saved['per_problem'].items():
    for n, rows in by_n.items():
      assert [r['id'] for r in rows] == ['test/0', 'test/1', 'test/2',
                                         'test/3'], (method, n)
      for r, gold in zip(rows, ['2', '0.5', '100', '5']):
        # `correct` is the grader's verdict on the recorded answer.
        assert r['correct'] == (r['answer'] is not None and
                                search_eval.math_eval.matcher('grader')(
                                    r['answer'], gold))
  # The stand-in verifier was used: scored candidates and verifier tokens.
  assert saved['summary']['beam_search']['2']['verifier_tokens'] > 0
  assert any(c['score'] is not None
             for row in saved['per_problem']['best_of_n']['2']
             for c in row.get('candidates', []))
