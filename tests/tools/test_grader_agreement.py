"""tools/grader_agreement.py on a tiny synthetic data folder: its counts."""

import json
import pathlib

import pytest

from jaxreason.file_modules import load_file

REPO = pathlib.Path(__file__).resolve().parents[2]
tool = load_file(REPO / 'tools' / 'grader_agreement.py')

Q = ['Tom has 2 apples and buys 3 more. How many?',
     'She pays for 4 pens at 3 dollars with a 20. Change?',
     'Three boxes of 6 eggs, 2 broken. How many whole eggs?']


def _jsonl(path, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(''.join(json.dumps(r) + '\n' for r in rows))


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp('data')
  # MATH-500: item 0's answer "5" matches item 1's gold "x=5" (a genuine
  # equivalence the negative control must report).
  _jsonl(d / 'math500' / 'test.jsonl', [
      {'unique_id': 'm0', 'problem': 'P0', 'answer': '5',
       'solution': 'So $\\boxed{5}$.'},
      {'unique_id': 'm1', 'problem': 'P1', 'answer': 'x=5',
       'solution': 'Thus $\\boxed{x=5}$.'},
      {'unique_id': 'm2', 'problem': 'P2', 'answer': '\\frac{1}{2}',
       'solution': 'We get $\\boxed{\\frac{1}{2}}$.'}])
  # AIME: the answer field is separate from the AoPS text; item 2 disagrees.
  _jsonl(d / 'aime24' / 'test.jsonl', [
      {'id': 60, 'problem': 'A0', 'answer': '025',
       'solution': 'Adding the equations, the answer is $25$.'},
      {'id': 61, 'problem': 'A1', 'answer': '104',
       'solution': 'We find $n = 104$, hence $\\boxed{104}$.'},
      {'id': 62, 'problem': 'A2', 'answer': '013',
       'solution': 'Therefore the final answer is 12.'}])
  # GSM8K: item 2's prose does not end in its gold (16).
  _jsonl(d / 'gsm8k' / 'test.jsonl', [
      {'question': Q[0], 'answer': '2+3=<<2+3=5>>5 apples.\n#### 5'},
      {'question': Q[1], 'answer': 'She pays 4*3=<<4*3=12>>12 and gets '
                                   '20-12=<<20-12=8>>8 back.\n#### 8'},
      {'question': Q[2], 'answer': 'The boxes hold 6*3=<<6*3=18>>18 eggs, '
                                   'and 2 are broken.\n#### 16'}])
  _jsonl(d / 'gsm8k' / 'train.jsonl', [
      {'question': 'Train question?', 'answer': 'It is 7.\n#### 7'}])
  pb = d / 'processbench'
  pb.mkdir()
  (pb / 'gsm8k.json').write_text(json.dumps([
      # grader True, label True (every step correct).
      {'id': 'g0', 'problem': Q[0], 'label': -1, 'final_answer_correct': True,
       'steps': ['Tom starts with 2.', '2+3=5, so \\boxed{5}.']},
      # grader False, label False.
      {'id': 'g1', 'problem': Q[1], 'label': 1, 'final_answer_correct': False,
       'steps': ['4*3=12.', '20-12=7, so \\boxed{7}.']},
      # grader False, label True (an annotator the grader disagrees with).
      {'id': 'g2', 'problem': Q[2], 'label': -1, 'final_answer_correct': True,
       'steps': ['6*3=18.', 'The answer is \\boxed{18}.']},
      # grader True, label False.
      {'id': 'g3', 'problem': Q[0], 'label': 0, 'final_answer_correct': False,
       'steps': ['\\boxed{5}']},
      # Not a GSM8K problem: skipped.
      {'id': 'g4', 'problem': 'Elsewhere?', 'label': -1,
       'final_answer_correct': True, 'steps': ['\\boxed{1}']}]))
  (pb / 'math.json').write_text(json.dumps([
      {'id': 'p0', 'problem': 'P2', 'label': -1, 'final_answer_correct': True,
       'steps': ['Half of it: \\boxed{0.5}']}]))
  return d


@pytest.fixture(scope='module')
def report(data_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp('out') / 'sub' / 'report.json'
  returned = tool.main(['grader_agreement', f'--data_dir={data_dir}',
                        f'--output={out}'])
  written = json.loads(out.read_text())
  assert written == json.loads(json.dumps(returned))
  return written


def _counts(r):
  return r['agree'], r['n']


def test_informative_counts(report):
  info = report['informative']
  assert _counts(info['aime24']) == (2, 3)
  assert [d['id'] for d in info['aime24']['disagreements']] == ['62']
  assert _counts(info['gsm8k_test/no_hashes']) == (2, 3)
  assert [d['id'] for d in info['gsm8k_test/no_hashes']['disagreements']] == [
      'test/2']
  labels = info['processbench_gsm8k_labels']
  assert _counts(labels) == (2, 4)
  assert labels['confusion'] == {
      'grader_true_label_true': 1, 'grader_true_label_false': 1,
      'grader_false_label_true': 1, 'grader_false_label_false': 1}
  assert sorted(d['id'] for d in labels['disagreements']) == ['g2', 'g3']
  assert _counts(info['processbench_gsm8k_all_steps_correct']) == (1, 2)
  assert _counts(info['processbench_math_labels']) == (1, 1)
  assert _counts(info['processbench_math_all_steps_correct']) == (1, 1)
  assert 'math500' not in info and 'gsm8k_test' not in info


def test_negative_controls_and_sanity_checks(report):
  controls = report['negative_controls']
  assert (controls['aime24/shuffled']['n'],
          controls['aime24/shuffled']['false_matches']) == (3, 0)
  assert controls['gsm8k_test/no_hashes/shuffled']['false_matches'] == 0
  math = controls['math500/shuffled']
  assert (math['n'], math['false_matches']) == (3, 1)
  assert math['pairs'] == [{'id': 'm0', 'extracted': '5', 'gold': 'x=5'}]
  assert _counts(report['data_checks']['gsm8k_test/calculator']) == (2, 3)
  sanity = report['sanity_checks']
  assert _counts(sanity['math500']) == (3, 3)
  assert _counts(sanity['gsm8k_test']) == (3, 3)
  assert all(r['note'] for r in sanity.values())


def test_provenance(report, data_dir):
  prov = report['provenance']
  assert len(prov['git_commit']) == 40
  int(prov['git_commit'], 16)
  assert isinstance(prov['git_dirty'], bool)
  # Relative to the repository (no machine paths in the JSON).
  assert (pathlib.Path(tool.REPO) / prov['data_dir']).resolve() == (
      pathlib.Path(data_dir).resolve())
  assert prov['machine']['cpu_count'] >= 1 and prov['machine']['python']
  assert prov['versions']['sympy']
