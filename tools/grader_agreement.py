r"""Agreement of `jaxreason.rewards.grader` with benchmark reference answers.

  python tools/grader_agreement.py --data_dir=../shared/data \
      --output=grader_agreement.json [--gsm8k_train]

The data directory comes from --data_dir, else $JAXREASON_DATA, else
`../shared/data` beside the repository. For every reference solution we
extract the final answer with `extract_answer` and match it against the
reference answer with `answers_match`; a disagreement is a grader error
(or a reference solution whose final form differs from the answer field).

Datasets (AMC23 has no solutions and is skipped):
  math500         `solution` -> extract -> match `answer`.
  aime24          `solution` (AoPS text, several solutions) vs `answer`
                  (zero-padded, e.g. "025").
  gsm8k_test      `answer` text (ends in `#### N`) vs N.
  gsm8k_test/no_hashes    robustness: the text WITHOUT the `#### N` line,
                  so extraction falls back to the last number.
  gsm8k_test/calculator   robustness: the result of the last `<<a*b=c>>`
                  calculator annotation.
  gsm8k_train[...] the same on the training split (with --gsm8k_train).

Prints agreement per dataset, lists every disagreement (id, extracted, gold)
and writes all of it as JSON.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import time
from typing import Callable, Iterable

from absl import app
from absl import flags

from jaxreason.rewards import grader

REPO = pathlib.Path(__file__).resolve().parents[1]
# (id, text to extract from, gold answer)
Item = tuple[str, str, str]


def default_data_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get('JAXREASON_DATA',
                                     REPO.parent / 'shared' / 'data'))


def _jsonl(path: pathlib.Path) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def math500_items(data_dir: pathlib.Path) -> list[Item]:
  return [(r['unique_id'], r['solution'], r['answer'])
          for r in _jsonl(data_dir / 'math500' / 'test.jsonl')]


def aime24_items(data_dir: pathlib.Path) -> list[Item]:
  return [(str(r['id']), r['solution'], r['answer'])
          for r in _jsonl(data_dir / 'aime24' / 'test.jsonl')]


def gsm8k_items(data_dir: pathlib.Path, split: str = 'test',
                variant: str = 'full') -> list[Item]:
  """GSM8K: variant 'full', 'no_hashes' (drop `#### N`) or 'calculator'."""
  items = []
  for i, r in enumerate(_jsonl(data_dir / 'gsm8k' / f'{split}.jsonl')):
    body, gold = r['answer'].rsplit('####', 1)
    if variant == 'full':
      text = r['answer']
    elif variant == 'no_hashes':
      text = body
    elif variant == 'calculator':
      results = re.findall(r'<<[^<>]*=([^<>=]*)>>', body)
      text = f'#### {results[-1]}' if results else ''
    else:
      raise ValueError(variant)
    items.append((f'{split}/{i}', text, gold.strip()))
  return items


def processbench_items(data_dir: pathlib.Path, name: str
                       ) -> list[tuple[str, str, str, bool]]:
  """Model solutions from ProcessBench whose problem is in MATH-500/GSM8K.

  Returns (id, solution, gold answer joined by problem text, label), where the
  label is ProcessBench's `final_answer_correct`.
  """
  if name == 'math':
    golds = {r['problem'].strip(): r['answer']
             for r in _jsonl(data_dir / 'math500' / 'test.jsonl')}
  else:
    golds = {r['question'].strip(): r['answer'].rsplit('####', 1)[1].strip()
             for split in ('test', 'train')
             for r in _jsonl(data_dir / 'gsm8k' / f'{split}.jsonl')}
  with open(data_dir / 'processbench' / f'{name}.json') as f:
    rows = json.load(f)
  return [(r['id'], '\n\n'.join(r['steps']), golds[r['problem'].strip()],
           bool(r['final_answer_correct']))
          for r in rows if r['problem'].strip() in golds]


def label_agreement(items: Iterable[tuple[str, str, str, bool]]) -> dict:
  """How often grade(solution, gold) equals a human/model correctness label."""
  n, agree, wrong = 0, 0, []
  for item_id, text, gold, label in items:
    extracted = grader.extract_answer(text)
    ok = extracted is not None and grader.answers_match(extracted, gold)
    n += 1
    agree += ok == label
    if ok != label:
      wrong.append({'id': item_id, 'extracted': extracted, 'gold': gold,
                    'label': label})
  return {'n': n, 'agree': agree, 'rate': agree / max(n, 1),
          'disagreements': wrong}


def shuffled_false_matches(items: list[Item]) -> dict:
  """Negative control: item i's extracted answer against item i+1's gold.

  Counts pairs whose reference answers differ as strings yet are matched; each
  is listed so that a reader can check it is a genuine equivalence.
  """
  answers = [grader.extract_answer(text) for _, text, _ in items]
  n, matched = 0, []
  for i, (item_id, _, _) in enumerate(items):
    j = (i + 1) % len(items)
    gold_i, gold_j = items[i][2], items[j][2]
    if answers[i] is None or gold_i.strip() == gold_j.strip():
      continue
    n += 1
    if grader.answers_match(answers[i], gold_j):
      matched.append({'id': item_id, 'extracted': answers[i], 'gold': gold_j})
  return {'n': n, 'false_matches': len(matched), 'pairs': matched}


def agreement(items: Iterable[Item],
              match: Callable[[str, str], bool] = grader.answers_match
              ) -> dict:
  """Extracts and matches every item; returns counts and disagreements."""
  n, agree, wrong = 0, 0, []
  for item_id, text, gold in items:
    extracted = grader.extract_answer(text)
    ok = extracted is not None and match(extracted, gold)
    n += 1
    agree += ok
    if not ok:
      wrong.append({'id': item_id, 'extracted': extracted, 'gold': gold})
  return {'n': n, 'agree': agree, 'rate': agree / max(n, 1),
          'disagreements': wrong}


def datasets(data_dir: pathlib.Path, gsm8k_train: bool
             ) -> dict[str, list[Item]]:
  out = {'math500': math500_items(data_dir),
         'aime24': aime24_items(data_dir)}
  splits = ['test'] + (['train'] if gsm8k_train else [])
  for split in splits:
    out[f'gsm8k_{split}'] = gsm8k_items(data_dir, split, 'full')
    for variant in ('no_hashes', 'calculator'):
      out[f'gsm8k_{split}/{variant}'] = gsm8k_items(data_dir, split, variant)
  return out


def main(argv):
  del argv
  data_dir = pathlib.Path(flags.FLAGS.data_dir) if flags.FLAGS.data_dir else (
      default_data_dir())
  if not data_dir.exists():
    raise app.UsageError(f'no data at {data_dir}; pass --data_dir')
  grader.warmup()
  report = {}
  all_items = datasets(data_dir, flags.FLAGS.gsm8k_train)
  for name, items in all_items.items():
    start = time.time()
    result = agreement(items)
    result['seconds'] = time.time() - start
    report[name] = result
    print(f'{name:28s} {result["agree"]:5d}/{result["n"]:<5d} '
          f'= {100 * result["rate"]:6.2f}%  ({result["seconds"]:.1f} s)')
    for d in result['disagreements']:
      print(f'    {d["id"]}: extracted={d["extracted"]!r} gold={d["gold"]!r}')
  for name in ('gsm8k', 'math'):
    start = time.time()
    result = label_agreement(processbench_items(data_dir, name))
    result['seconds'] = time.time() - start
    report[f'processbench_{name}_labels'] = result
    print(f'processbench_{name}_labels      {result["agree"]:5d}/'
          f'{result["n"]:<5d} = {100 * result["rate"]:6.2f}%  '
          f'({result["seconds"]:.1f} s)')
    for d in result['disagreements']:
      print(f'    {d["id"]}: extracted={d["extracted"]!r} gold={d["gold"]!r} '
            f'label={d["label"]}')
  for name in ('math500', 'aime24', 'gsm8k_test'):
    result = shuffled_false_matches(all_items[name])
    report[f'{name}/shuffled'] = result
    print(f'{name + "/shuffled":28s} {result["false_matches"]} false matches '
          f'in {result["n"]} pairs with different gold strings')
    for d in result['pairs']:
      print(f'    {d["id"]}: extracted={d["extracted"]!r} gold={d["gold"]!r}')
  with open(flags.FLAGS.output, 'w') as f:
    json.dump(report, f, indent=1)
  print(f'wrote {flags.FLAGS.output}')


if __name__ == '__main__':
  # Defined here, not at import, so that tests can import this file.
  flags.DEFINE_string('data_dir', None, 'Benchmark data directory.')
  flags.DEFINE_string('output', 'grader_agreement.json',
                      'Where to write the JSON report.')
  flags.DEFINE_bool('gsm8k_train', False,
                    'Also measure on the GSM8K train split.')
  app.run(main)
