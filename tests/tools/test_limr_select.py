"""tools/limr_select.py on a small reward log with repeats and gaps."""

import json
import pathlib

import pytest

from jaxreason.file_modules import load_file

REPO = pathlib.Path(__file__).resolve().parents[2]


limr = load_file(REPO / 'tools' / 'limr_select.py')


def _write(path, rows):
  path.write_text(''.join(json.dumps(r) + '\n' for r in rows))


def test_selects_by_score_and_writes_records(tmp_path):
  # Per epoch (0, 1, 2): sample 0 rises 0 -> 1, sample 1 is the average
  # curve, sample 2 is always solved, sample 3 never; sample 4 is never drawn.
  curves = {0: [0.0, 0.5, 1.0], 1: [1 / 3, 0.5, 2 / 3], 2: [1.0] * 3,
            3: [0.0] * 3}
  rows = []
  for i, curve in curves.items():
    for epoch, r in enumerate(curve):
      # Drawn twice per epoch: rewards r - 0.1 and r + 0.1 average to r.
      rows += [{'index': i, 'epoch': epoch, 'step': 2 * epoch, 'reward': r - d}
               for d in (0.1, -0.1)]
  workdir = tmp_path / 'grpo'
  workdir.mkdir()
  _write(workdir / 'limr_rewards.jsonl', rows)
  records = [{'prompt': 'held out', 'answer': '0'}] + [
      {'prompt': f'p{i}', 'answer': str(i)} for i in range(5)]
  _write(tmp_path / 'train.jsonl', records)

  out = tmp_path / 'limr.jsonl'
  summary = limr.main([f'--rewards={workdir}', f'--output={out}',
                       f'--records={tmp_path / "train.jsonl"}',
                       '--records_offset=1'])
  selected = [json.loads(l) for l in out.read_text().splitlines()]
  assert [s['index'] for s in selected] == [0, 1]
  assert selected[0]['score'] == pytest.approx(
      1 - (2 / 9) / (4 / 9 + 1 / 4 + 1 / 9))
  assert selected[1]['score'] == pytest.approx(1.0)
  assert summary['samples'] == 5 and summary['never_drawn'] == 1
  assert summary['epochs'] == [0, 1, 2]
  kept = [json.loads(l) for l in
          (tmp_path / 'limr.records.jsonl').read_text().splitlines()]
  assert kept == records[1:3]

  # A stricter threshold keeps only the sample on the average curve.
  limr.main([f'--rewards={workdir / "limr_rewards.jsonl"}',
             f'--output={out}', '--threshold=0.9'])
  assert [json.loads(l)['index'] for l in out.read_text().splitlines()] == [1]
