"""Step-label readers and TRL-style PRM tokenisation."""

import json

import numpy as np
import pytest

from jaxreason import config_defaults
from jaxreason.data import sources, step_labels
from jaxreason.data.tokenizer import CharTokenizer


def test_encode_puts_labels_on_the_separators_last_token():
  tok = CharTokenizer()
  sep = tok.encode('\n\n')
  enc = step_labels.encode_example(tok, 'Q?', ['1+2=3', '3*2=6'], [1.0, 0.0],
                                   separator_ids=sep, max_len=64)
  prompt = [tok.bos_id] + tok.encode('Q?\n')
  s1 = tok.encode('1+2=3') + sep
  s2 = tok.encode('3*2=6') + sep
  assert enc['tokens'].tolist() == prompt + s1 + s2
  assert enc['label_positions'].tolist() == [
      len(prompt) + len(s1) - 1, len(prompt) + len(s1) + len(s2) - 1]
  assert tok.decode([enc['tokens'][p] for p in enc['label_positions']]) == (
      '\n\n')
  arr = step_labels.batch_arrays([enc], 32)
  assert arr['label_mask'].sum() == 2
  np.testing.assert_array_equal(arr['labels'][0, enc['label_positions']],
                                [1.0, 0.0])


def test_encode_drops_steps_past_max_len():
  tok = CharTokenizer()
  enc = step_labels.encode_example(tok, 'Q', ['aaaa', 'bbbb'], None,
                                   separator_ids=tok.encode('\n'), max_len=9)
  assert enc['num_steps_kept'] == 1 and len(enc['tokens']) == 8


def test_synthetic_examples_have_prefix_labels():
  problems = sources.train_problems(config_defaults.synthetic_task(), 20, 0)
  exs = step_labels.synthetic_examples(problems, group_size=3,
                                       flawed_prob=0.5, seed=0)
  assert len(exs) == 60
  for e in exs:
    assert len(e.labels) == len(e.steps) == 5  # 4 steps + the box.
    if e.first_wrong_step < 0:
      assert set(e.labels) == {1.0} and e.answer_correct
    else:
      k = e.first_wrong_step
      assert e.labels[:k] == (1.0,) * k and e.labels[k:] == (0.0,) * (5 - k)
  for g in range(20):  # Every group has a correct and a flawed solution.
    firsts = {e.first_wrong_step >= 0 for e in exs if e.group == g}
    assert firsts == {True, False}


def test_checked_example_labels_policy_style_samples():
  from jaxreason.data import synthetic  # pylint: disable=g-import-not-at-top
  p = synthetic.parse_question(
      'Start at 8. Subtract 5, add 3, multiply by 2. Answer mod 10.')
  assert p is not None and p.num_steps == 3
  cases = {  # text -> (labels written by hand, answer correct)
      '8-5=3\n\n3+3=6\n\n6*2=2\n\n\\boxed{2}': ((1, 1, 1, 1), True),
      '8-5=3\n\n3+3=7\n\n7*2=4\n\n\\boxed{4}': ((1, 0, 0, 0), False),
      # Arithmetic right but from a wrong input: wrong from step 1 on.
      '8-5=3\n\n4+3=7\n\n7*2=4\n\n\\boxed{4}': ((1, 0, 0, 0), False),
      # A step missing: the box comes too early.
      '8-5=3\n\n3+3=6\n\n\\boxed{6}': ((1, 1, 0), False),
      # Right steps, wrong box.
      '8-5=3\n\n3+3=6\n\n6*2=2\n\n\\boxed{3}': ((1, 1, 1, 0), False),
      # Unfinished (no box): the steps it has are judged.
      '8-5=3\n\n3+3=6': ((1, 1), False),
  }
  for text, (labels, ok) in cases.items():
    e = step_labels.checked_example(p, text, group=3, id_='x')
    assert e.labels == tuple(float(v) for v in labels), text
    assert e.answer_correct == ok and e.group == 3
    assert e.first_wrong_step == (labels.index(0) if 0 in labels else -1)
    assert e.steps == tuple(text.split('\n\n'))


def _step(texts_ratings, chosen):
  return {'completions': [{'text': t, 'rating': r} for t, r in texts_ratings],
          'human_completion': None, 'chosen_completion': chosen}


def test_prm800k_reader(tmp_path):
  rows = [
      # Two good steps, a neutral one, then an error with no chosen step.
      {'question': {'problem': 'P1'}, 'label': {
          'finish_reason': 'found_error', 'steps': [
              _step([('a', 1)], 0), _step([('x', -1), ('b', 0)], 1),
              _step([('c', 1), ('d', -1)], None), _step([('e', 1)], 0)]}},
      # A complete solution.
      {'question': {'problem': 'P2'}, 'label': {
          'finish_reason': 'solution', 'steps': [_step([('f', 1)], 0)]}},
      {'question': {'problem': 'P3'}, 'label': {
          'finish_reason': 'give_up', 'steps': [_step([('g', 1)], 0)]}},
      {'question': {}, 'label': {'finish_reason': 'solution', 'steps': []}},
  ]
  path = tmp_path / 'prm800k.jsonl'
  path.write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
  exs, report = step_labels.read_prm800k(str(path))
  assert [e.steps for e in exs] == [('a', 'b', 'd'), ('f',)]
  assert exs[0].labels == (1.0, 1.0, 0.0) and exs[0].first_wrong_step == 2
  assert not exs[0].answer_correct and exs[1].answer_correct
  assert report['skipped_finish_reason_or_empty'] == 1
  assert [b['id'] for b in report['bad']] == [f'{path}:4']
  exs, _ = step_labels.read_prm800k(str(path), neutral=None)
  assert np.isnan(exs[0].labels[1])
  enc = step_labels.encode_example(CharTokenizer(), exs[0].question,
                                   exs[0].steps, exs[0].labels,
                                   separator_ids=[3], max_len=64)
  assert step_labels.batch_arrays([enc], 64)['label_mask'].sum() == 2


def test_processbench_example_labels():
  rec = {'id': 'x', 'problem': 'p', 'steps': ['a', 'b', 'c'], 'label': 1,
         'final_answer_correct': False}
  e = step_labels.processbench_example(rec)
  assert e.labels == (1.0, 0.0, 0.0) and e.first_wrong_step == 1
  assert step_labels.missing_fields({'id': 1, 'steps': 'abc'}) == [
      'problem', 'label', 'final_answer_correct', 'steps (a list of strings)']
  with pytest.raises(KeyError):
    step_labels.processbench_example({'id': 'y'})
