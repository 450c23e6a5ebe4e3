r"""Readers for the math benchmarks in ../shared/data (see its README.md).

  records = benchmarks.load('math500', data_dir)   # data_dir None: the default
  records[0] -> {'id': 'test/precalculus/807.json', 'problem': '...',
                 'answer': '\left( 3, \frac{\pi}{2} \right)', 'level': 2,
                 'subject': 'Precalculus', 'solution': '...', ...}

Every record has

  id          a string unique within the benchmark: MATH-500's `unique_id`,
              AIME 2024's / AMC23's row `id` ('60'), AIME 2025's
              '2025_I/1' (contest folder and problem number), GSM8K's
              '{split}/{line index}' ('test/0').
  problem     the statement, unmodified.
  answer      the reference answer as the benchmark states it, as a string:
              AIME 2024's zero-padded '025' stays '025' (the grader matches
              it with 25), GSM8K's is the text after the last '####'. AMC23
              stores a JSON float (27.0): an integral float is written as an
              integer ('27', the form a contest answer takes and the form a
              solution writes), any other as Python's repr ('0.5').
  answer_raw  the answer field exactly as stored (float for AMC23).

and, where the benchmark has them, `level` (int 1-5) and `subject`
(MATH-500), `solution` (MATH-500, AIME 2024; GSM8K's worked solution with
its `#### N` line) and `url`.

Bad input: a malformed row (not JSON, not an object, a missing or empty
field, GSM8K without '####', an AIME 2025 answer without its .tex file)
raises ValueError naming the file and line. With `skip_malformed=True` it is
logged with file and line and skipped instead; `read` also returns those
messages.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Callable, Iterator

from absl import logging

from jaxreason.data import paths

BENCHMARKS = ('math500', 'aime24', 'aime25', 'amc23', 'gsm8k')
AIME25_CONTESTS = ('aime_2025_I', 'aime_2025_II')


class MalformedRowError(ValueError):
  """A benchmark row that cannot be read; the message starts 'file:line:'."""


def format_answer(value: Any) -> str:
  """The reference answer as a string; 27.0 -> '27', 0.5 -> '0.5'."""
  if isinstance(value, bool):
    raise TypeError(f'answer is a bool ({value!r})')
  if isinstance(value, float):
    if value.is_integer():
      return str(int(value))
    return repr(value)
  if isinstance(value, (int, str)):
    return str(value).strip()
  raise TypeError(f'answer has type {type(value).__name__}: {value!r}')


def _text(row: dict, key: str) -> str:
  value = row.get(key)
  if not isinstance(value, str) or not value.strip():
    raise ValueError(f'field {key!r} must be a non-empty string, got '
                     f'{value!r:.80}' if key in row else
                     f'missing field {key!r} (fields: {sorted(row)})')
  return value


def _answer(row: dict) -> tuple[str, Any]:
  """(answer as a string, as stored); ValueError if missing or empty."""
  if row.get('answer') is None:
    raise ValueError(f"missing field 'answer' (fields: {sorted(row)})")
  answer = format_answer(row['answer'])
  if not answer:
    raise ValueError("empty field 'answer'")
  return answer, row['answer']


def _jsonl_rows(path: pathlib.Path) -> Iterator[tuple[int, Any]]:
  """(line number, decoded JSON or the exception) of each non-blank line."""
  with open(path, encoding='utf-8') as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        yield lineno, json.loads(line)
      except json.JSONDecodeError as e:
        yield lineno, ValueError(f'not valid JSON ({e.msg})')


def _math500(row: dict, split: str, index: int) -> dict[str, Any]:
  del split, index
  rec = {'id': _text(row, 'unique_id'), 'problem': _text(row, 'problem')}
  rec['answer'], rec['answer_raw'] = _answer(row)
  if 'level' in row:
    level = row['level']
    if isinstance(level, str) and level.startswith('Level '):
      level = level[len('Level '):]
    try:
      rec['level'] = int(level)
    except (TypeError, ValueError):
      raise ValueError(f'level {row["level"]!r} is not an integer') from None
  if 'subject' in row:
    rec['subject'] = _text(row, 'subject')
  if 'solution' in row:
    rec['solution'] = _text(row, 'solution')
  return rec


def _contest(row: dict, split: str, index: int) -> dict[str, Any]:
  """AIME 2024 and AMC23: id, problem, answer (str / float), url."""
  del split, index
  if 'id' not in row:
    raise ValueError(f'missing field \'id\' (fields: {sorted(row)})')
  rec = {'id': str(row['id']), 'problem': _text(row, 'problem')}
  rec['answer'], rec['answer_raw'] = _answer(row)
  for key in ('solution', 'url'):
    if key in row:
      rec[key] = _text(row, key)
  return rec


def _gsm8k(row: dict, split: str, index: int) -> dict[str, Any]:
  solution = _text(row, 'answer')
  if '####' not in solution:
    raise ValueError("field 'answer' has no '#### <answer>' line")
  answer = solution.rsplit('####', 1)[1].strip()
  if not answer:
    raise ValueError("nothing after '####'")
  return {'id': f'{split}/{index}', 'problem': _text(row, 'question'),
          'answer': answer, 'answer_raw': answer, 'solution': solution}


def _read_jsonl(path: pathlib.Path, parse: Callable[..., dict], split: str,
                skip: bool, skipped: list[str]) -> list[dict]:
  records = []
  for index, (lineno, row) in enumerate(_jsonl_rows(path)):
    try:
      if isinstance(row, Exception):
        raise row
      if not isinstance(row, dict):
        raise ValueError(f'expected a JSON object, got {type(row).__name__}')
      records.append(parse(row, split, index))
    except (ValueError, TypeError) as e:
      _bad(f'{path}:{lineno}: {e}', skip, skipped)
  return records


def _bad(message: str, skip: bool, skipped: list[str]) -> None:
  if not skip:
    raise MalformedRowError(message + ' (pass skip_malformed=True to skip '
                            'malformed rows)')
  logging.warning('skipping malformed row: %s', message)
  skipped.append(message)


def _aime25(root: pathlib.Path, skip: bool, skipped: list[str]
            ) -> list[dict]:
  """MathArena layout: <contest>/answers.csv (id,answer), problems/<id>.tex."""
  records = []
  for contest in AIME25_CONTESTS:
    folder = paths.require(root / contest, f'AIME 2025 contest {contest}')
    csv_path = folder / 'answers.csv'
    with open(paths.require(csv_path, 'AIME 2025 answers'),
              encoding='utf-8') as f:
      lines = f.read().splitlines()
    if not lines or lines[0].replace(' ', '') != 'id,answer':
      _bad(f'{csv_path}:1: expected the header "id,answer", got '
           f'{lines[0] if lines else ""!r}', skip, skipped)
      continue
    for lineno, line in enumerate(lines[1:], 2):
      if not line.strip():
        continue
      try:
        parts = [p.strip() for p in line.split(',')]
        if len(parts) != 2 or not parts[0] or not parts[1]:
          raise ValueError(f'expected "id,answer", got {line!r}')
        tex = folder / 'problems' / f'{parts[0]}.tex'
        if not tex.exists():
          raise ValueError(f'no problem file {tex}')
        problem = tex.read_text(encoding='utf-8')
        if not problem.strip():
          raise ValueError(f'{tex} is empty')
      except ValueError as e:
        _bad(f'{csv_path}:{lineno}: {e}', skip, skipped)
        continue
      records.append({'id': f'{contest[len("aime_"):]}/{parts[0]}',
                      'problem': problem, 'answer': parts[1],
                      'answer_raw': parts[1]})
  return records


_JSONL = {'math500': _math500, 'aime24': _contest, 'amc23': _contest,
          'gsm8k': _gsm8k}


def read(name: str, data_dir: str | os.PathLike | None = None, *,
         split: str = 'test', skip_malformed: bool = False
         ) -> tuple[list[dict], list[str]]:
  """(records, messages of the skipped malformed rows); see `load`."""
  if name not in BENCHMARKS:
    raise ValueError(f'unknown benchmark {name!r}: expected one of '
                     f'{BENCHMARKS}')
  if split != 'test' and name != 'gsm8k':
    raise ValueError(f'{name} has only a test split, got split={split!r}')
  root = paths.require(paths.data_dir(data_dir) / name, f'benchmark {name}')
  skipped: list[str] = []
  if name == 'aime25':
    records = _aime25(root, skip_malformed, skipped)
  else:
    path = paths.require(root / f'{split}.jsonl', f'{name} {split} split')
    records = _read_jsonl(path, _JSONL[name], split, skip_malformed, skipped)
  ids = [r['id'] for r in records]
  if len(set(ids)) != len(ids):
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    raise MalformedRowError(f'{root}: duplicate ids {dupes[:5]}')
  if skipped:
    logging.warning('%s: skipped %d malformed rows', name, len(skipped))
  return records, skipped


def load(name: str, data_dir: str | os.PathLike | None = None, *,
         split: str = 'test', skip_malformed: bool = False) -> list[dict]:
  """The records of benchmark `name` (see the module docstring).

  Args:
    name: 'math500', 'aime24', 'aime25', 'amc23' or 'gsm8k'.
    data_dir: the benchmark data folder; None or '': $JAXREASON_DATA, else
      ../shared/data (`jaxreason.data.paths.data_dir`).
    split: 'test'; GSM8K also has 'train'.
    skip_malformed: log and skip malformed rows instead of raising.

  Returns:
    One dict per problem, in file order (AIME 2025: contest I then II, in
    answers.csv order).

  Raises:
    FileNotFoundError: the data folder or a benchmark file is missing.
    MalformedRowError: (a ValueError) a malformed row, unless skipped.
  """
  return read(name, data_dir, split=split, skip_malformed=skip_malformed)[0]
