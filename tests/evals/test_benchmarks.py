"""Benchmark readers (jaxreason.evals.benchmarks): real files and bad rows."""

import json

import pytest

from jaxreason.evals import benchmarks
from jaxreason.rewards import grader

# Rows per test split, from ../shared/data/README.md.
COUNTS = {'math500': 500, 'aime24': 30, 'aime25': 30, 'amc23': 40,
          'gsm8k': 1319}


@pytest.mark.parametrize('name', benchmarks.BENCHMARKS)
def test_every_row_of_the_real_file_parses(name, data_dir):
  records, skipped = benchmarks.read(name, data_dir)
  assert skipped == []
  assert len(records) == COUNTS[name]
  assert len({r['id'] for r in records}) == len(records)
  for r in records:
    assert isinstance(r['id'], str) and r['id']
    assert isinstance(r['problem'], str) and r['problem'].strip()
    assert isinstance(r['answer'], str) and r['answer'].strip(), r['id']
  if name == 'math500':
    assert {r['level'] for r in records} == {1, 2, 3, 4, 5}
    assert len({r['subject'] for r in records}) == 7
    # The answer field is the solution's own last box (README).
    for r in records[:50]:
      assert grader.last_boxed(r['solution']) is not None
  if name in ('aime24', 'aime25'):
    for r in records:
      assert 0 <= int(r['answer']) <= 999, r  # AIME answers: 000 to 999.
  if name == 'amc23':
    assert records[0]['answer'] == '27'
    assert records[0]['answer_raw'] == 27.0
    for r in records:
      assert float(r['answer']) == r['answer_raw']
  if name == 'aime25':
    by_id = {r['id']: r for r in records}
    assert by_id['2025_I/1']['answer'] == '70'
    assert 'bases $b>9$' in by_id['2025_I/1']['problem']
    assert sum(r['id'].startswith('2025_II/') for r in records) == 15
  if name == 'gsm8k':
    assert records[0]['answer'] == '18'  # Janet's ducks.
    for r in records:
      assert '####' not in r['answer'] and r['solution'].endswith(r['answer'])


def test_gsm8k_train_split(data_dir):
  assert len(benchmarks.load('gsm8k', data_dir, split='train')) == 7473
  with pytest.raises(ValueError, match='only a test split'):
    benchmarks.load('aime24', data_dir, split='train')


def test_format_answer():
  assert benchmarks.format_answer(27.0) == '27'
  assert benchmarks.format_answer(-1.0) == '-1'
  assert benchmarks.format_answer(0.5) == '0.5'
  assert benchmarks.format_answer(' 025 ') == '025'
  assert benchmarks.format_answer(7) == '7'
  with pytest.raises(TypeError):
    benchmarks.format_answer(None)


def _write(path, lines):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(''.join(l + '\n' for l in lines))


def _math500_dir(tmp_path):
  good = lambda i: json.dumps({'unique_id': f'u{i}', 'problem': f'P{i}',
                               'answer': str(i), 'level': 'Level 3',
                               'subject': 'Algebra'})
  _write(tmp_path / 'math500' / 'test.jsonl', [
      good(0),
      '{"unique_id": "u1", "problem": "P1", "answer": "1"',  # Line 2: cut.
      '',
      json.dumps({'unique_id': 'u3', 'problem': 'P3'}),  # Line 4: no answer.
      good(4),
      '[1, 2]',  # Line 6: not an object.
      json.dumps({'unique_id': 'u6', 'problem': 'P6', 'answer': '6',
                  'level': 'hard'}),  # Line 7: bad level.
  ])
  return tmp_path


def test_malformed_row_raises_naming_file_and_line(tmp_path):
  d = _math500_dir(tmp_path)
  with pytest.raises(benchmarks.MalformedRowError,
                     match=r'math500/test\.jsonl:2: not valid JSON'):
    benchmarks.load('math500', d)


def test_skip_malformed_reports_every_bad_line(tmp_path):
  d = _math500_dir(tmp_path)
  records, skipped = benchmarks.read('math500', d, skip_malformed=True)
  assert [r['id'] for r in records] == ['u0', 'u4']
  assert records[0]['level'] == 3 and records[0]['subject'] == 'Algebra'
  assert [s.split(': ')[0].rsplit(':', 1)[1] for s in skipped] == [
      '2', '4', '6', '7']
  assert "missing field 'answer'" in skipped[1]
  assert 'expected a JSON object' in skipped[2]
  assert "level 'hard'" in skipped[3]
  assert benchmarks.load('math500', d, skip_malformed=True) == records


def test_gsm8k_and_amc23_bad_rows(tmp_path):
  _write(tmp_path / 'gsm8k' / 'test.jsonl', [
      json.dumps({'question': 'Q0', 'answer': '2+2=4\n#### 4'}),
      json.dumps({'question': 'Q1', 'answer': 'no final line'}),
      json.dumps({'question': 'Q2', 'answer': 'x\n#### 1,000'})])
  with pytest.raises(ValueError, match=r'gsm8k/test\.jsonl:2: .*####'):
    benchmarks.load('gsm8k', tmp_path)
  recs = benchmarks.load('gsm8k', tmp_path, skip_malformed=True)
  assert [(r['id'], r['answer']) for r in recs] == [('test/0', '4'),
                                                    ('test/2', '1,000')]
  _write(tmp_path / 'amc23' / 'test.jsonl', [
      json.dumps({'id': 0, 'problem': 'A', 'answer': 27.0}),
      json.dumps({'id': 1, 'problem': 'B', 'answer': None}),
      json.dumps({'id': 2, 'problem': '', 'answer': 1.5})])
  recs, skipped = benchmarks.read('amc23', tmp_path, skip_malformed=True)
  assert [(r['id'], r['answer']) for r in recs] == [('0', '27')]
  assert [s.split(': ')[0][-1] for s in skipped] == ['2', '3']


def test_aime25_layout_and_bad_rows(tmp_path):
  for contest in benchmarks.AIME25_CONTESTS:
    folder = tmp_path / 'aime25' / contest
    _write(folder / 'answers.csv', ['id,answer', '1,70', '2', '3,5', ''])
    (folder / 'problems').mkdir()
    (folder / 'problems' / '1.tex').write_text('Find $x$.')
  with pytest.raises(ValueError, match=r'aime_2025_I/answers\.csv:3'):
    benchmarks.load('aime25', tmp_path)
  recs, skipped = benchmarks.read('aime25', tmp_path, skip_malformed=True)
  assert [(r['id'], r['problem'], r['answer']) for r in recs] == [
      ('2025_I/1', 'Find $x$.', '70'), ('2025_II/1', 'Find $x$.', '70')]
  assert len(skipped) == 4
  assert 'no problem file' in skipped[1] and skipped[1].split(': ')[0].endswith(
      'answers.csv:4')


def test_missing_data_and_unknown_name(tmp_path):
  with pytest.raises(FileNotFoundError, match='JAXREASON_DATA'):
    benchmarks.load('math500', tmp_path)
  with pytest.raises(ValueError, match='unknown benchmark'):
    benchmarks.load('math5000', tmp_path)


@pytest.mark.parametrize('name', ['aime24', 'aime25', 'amc23', 'gsm8k'])
def test_plain_integer_answers_match_the_stated_answer(name, data_dir):
  # What a model writes for these integer-answer benchmarks ('25' for AIME's
  # '025', '27' for AMC's 27.0, '1000' for GSM8K's '1,000') must grade right.
  records = benchmarks.load(name, data_dir)[:200]
  for r in records:
    plain = str(int(float(r['answer'].replace(',', ''))))
    assert grader.answers_match(plain, r['answer']), (r['id'], r['answer'])
    assert not grader.answers_match(str(int(plain) + 1), r['answer'])
