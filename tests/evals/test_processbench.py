"""ProcessBench metric, threshold protocol and readers."""

import json

import pytest

from jaxreason import config_defaults
from jaxreason.data import paths, sources, synthetic
from jaxreason.evals import processbench as pb
from jaxreason.verifiers.base import Judgement


def test_scores_match_a_hand_computation():
  labels = [2, 0, 1, 3, -1, -1, -1]
  preds = [2, 1, None, 3, -1, 0, None]
  s = pb.processbench_scores(preds, labels)
  # Erroneous: 2 of 4 exact (idx 0, 3); correct: 1 of 3 (idx 4).
  assert s['acc_erroneous'] == pytest.approx(0.5)
  assert s['acc_correct'] == pytest.approx(1 / 3)
  assert s['f1'] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
  assert (s['num_erroneous'], s['num_correct']) == (4, 3)


def test_f1_is_zero_when_both_accuracies_are():
  s = pb.processbench_scores([None, 0], [1, -1])
  assert s == dict(s, acc_erroneous=0.0, acc_correct=0.0, f1=0.0)


def _j(*scores):
  return Judgement(step_scores=tuple(scores))


def test_threshold_protocol_picks_on_gsm8k_and_reuses_it():
  # gsm8k: errors at step 1 score 0.3 there; correct solutions >= 0.6.
  gsm = [_j(0.9, 0.3, 0.8), _j(0.7, 0.35), _j(0.9, 0.6), _j(0.65, 0.7)]
  gsm_labels = [1, 1, -1, -1]
  # math: separable only at 0.45 (its oracle), not at gsm8k's threshold.
  mth = [_j(0.5, 0.4), _j(0.55, 0.5)]
  mth_labels = [1, -1]
  res = pb.threshold_protocol({'gsm8k': gsm, 'math': mth},
                              {'gsm8k': gsm_labels, 'math': mth_labels})
  t = res['threshold']
  assert 0.35 < t <= 0.6
  assert res['subsets']['gsm8k']['f1'] == pytest.approx(1.0)
  # At t in (0.35, 0.6], math's wrong solution is caught at step 1 and
  # the correct one is flagged at step 0 (0.55 < t) only if t > 0.55.
  expect = pb.processbench_scores(pb.predict(mth, t), mth_labels)
  assert res['subsets']['math']['f1'] == pytest.approx(expect['f1'])
  assert res['subsets']['math']['oracle_f1'] == pytest.approx(1.0)
  assert 0.4 < res['subsets']['math']['oracle_threshold'] <= 0.5
  assert res['average_f1'] == pytest.approx(
      (1.0 + expect['f1']) / 2)


def test_generative_predictions_ignore_the_threshold():
  js = [Judgement(None, first_error=2), Judgement(None, first_error=None)]
  assert pb.predict(js, 0.5) == [2, None]


def test_reader_reports_bad_records(tmp_path):
  recs = [{'id': 'a', 'generator': 'g', 'problem': 'p', 'steps': ['s'],
           'label': -1, 'final_answer_correct': True},
          {'id': 'b', 'problem': 'p', 'steps': ['s'], 'label': 0},
          {'generator': 'g'}]
  path = tmp_path / 'x.json'
  path.write_text(json.dumps(recs))
  good, bad = pb.read_subset(path)
  assert [r['id'] for r in good] == ['a']
  assert bad[0] == {'id': 'b', 'missing': ['final_answer_correct']}
  assert bad[1]['id'].endswith('[2]')


def test_synthetic_set_is_held_out_and_labelled():
  recs = pb.synthetic_processbench(config_defaults.synthetic_task(), 40)
  assert all(sources.is_held_out(r['problem']) for r in recs)
  assert {r['label'] == -1 for r in recs} == {True, False}
  for r in recs:
    assert r['steps'][-1].startswith('\\boxed{')
    first = next((i for i, s in enumerate(r['steps'][:-1])
                  if synthetic.parse_step(s) is None), None)
    assert first is None
    assert r['final_answer_correct'] or r['label'] >= 0


def test_reads_the_four_real_subsets():
  root = paths.data_dir() / 'processbench'
  if not root.exists():
    pytest.skip(f'{root} absent (ProcessBench data not available)')
  data, bad = pb.read_processbench()
  for s in pb.SUBSETS:
    assert len(data[s]) > 100, s
    assert not bad[s], (s, bad[s][:3])
    assert all(-1 <= r['label'] < len(r['steps']) for r in data[s])


def test_balanced_head_keeps_both_classes_in_file_order():
  recs = [{'id': i, 'label': l} for i, l in enumerate([0, 2, 1, -1, 3, -1])]
  assert [r['id'] for r in pb.balanced_head(recs, 4)] == [0, 1, 3, 5]
  assert [r['id'] for r in pb.balanced_head(recs, 3)] == [0, 1, 3]
