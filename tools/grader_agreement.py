r"""Agreement of `jaxreason.rewards.grader` with benchmark reference answers.

  python tools/grader_agreement.py --data_dir=../shared/data \
      --output=grader_agreement.json [--gsm8k_train]

The data directory comes from --data_dir, else $JAXREASON_DATA, else
`../shared/data` beside the repository; the benchmark files are read with
`jaxreason.evals.benchmarks`. For every reference solution we
extract the final answer with `extract_answer` and match it against the
reference answer with `answers_match`; a disagreement is a grader error
(or a reference solution whose final form differs from the answer field).

Informative figures (printed first; they can fail):
  aime24                 `solution` (AoPS text, several solutions, no
                         \boxed convention) vs the separate `answer` field
                         (zero-padded, e.g. "025").
  gsm8k_test/no_hashes   the worked solution WITHOUT its `#### N` line (so
                         extraction must find the answer in the prose)
                         graded against N.
  processbench_{gsm8k,math}_labels
                         the grader's verdict on a model's solution (its
                         steps joined) vs ProcessBench's human
                         `final_answer_correct`, as a confusion matrix; also
                         the solutions with every step correct (label -1).
  */shuffled             negative control: item i's extracted answer
                         against item i+1's gold (different strings); every
                         match is listed and should be a true equivalence.
Data check: gsm8k_test/calculator, the result of the last `<<a*b=c>>`
annotation vs N (a property of the data, not of the grader).
Sanity checks (tautological, cannot fail unless extraction breaks):
  math500                `answer` is the solution's own last \boxed{...}.
  gsm8k_test             gold is taken from the very `#### N` line that is
                         extracted.
AMC23 has no solutions and is skipped. With --gsm8k_train the GSM8K rows are
repeated on the training split.

Prints the figures and writes them as JSON with the git commit, the machine
and the library versions, so that a figure can be traced to its code.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import time
from typing import Any, Callable, Iterable, Sequence

from absl import app
from absl import flags

from jaxreason.data import paths
from jaxreason.evals import benchmarks
from jaxreason.rewards import grader

REPO = pathlib.Path(__file__).resolve().parents[1]
# (id, text to extract from, gold answer)
Item = tuple[str, str, str]


def default_data_dir() -> pathlib.Path:
  return paths.data_dir()


def math500_items(data_dir: pathlib.Path) -> list[Item]:
  return [(r['id'], r['solution'], r['answer'])
          for r in benchmarks.load('math500', data_dir)]


def aime24_items(data_dir: pathlib.Path) -> list[Item]:
  return [(r['id'], r['solution'], r['answer'])
          for r in benchmarks.load('aime24', data_dir)]


def gsm8k_items(data_dir: pathlib.Path, split: str = 'test',
                variant: str = 'full') -> list[Item]:
  """GSM8K: variant 'full', 'no_hashes' (drop `#### N`) or 'calculator'."""
  items = []
  for r in benchmarks.load('gsm8k', data_dir, split=split):
    body = r['solution'].rsplit('####', 1)[0]
    if variant == 'full':
      text = r['solution']
    elif variant == 'no_hashes':
      text = body
    elif variant == 'calculator':
      results = re.findall(r'<<[^<>]*=([^<>=]*)>>', body)
      text = f'#### {results[-1]}' if results else ''
    else:
      raise ValueError(variant)
    items.append((r['id'], text, r['answer']))
  return items


def processbench_items(data_dir: pathlib.Path, name: str,
                       all_steps_correct: bool = False
                       ) -> list[tuple[str, str, str, bool]]:
  """Model solutions from ProcessBench whose problem is in MATH-500/GSM8K.

  Returns (id, solution, gold answer joined by problem text, label), where the
  label is ProcessBench's `final_answer_correct`. With `all_steps_correct`,
  only the solutions whose every step the annotators accepted (label -1).
  """
  if name == 'math':
    golds = {r['problem'].strip(): r['answer']
             for r in benchmarks.load('math500', data_dir)}
  else:
    golds = {r['problem'].strip(): r['answer']
             for split in ('test', 'train')
             for r in benchmarks.load('gsm8k', data_dir, split=split)}
  with open(data_dir / 'processbench' / f'{name}.json') as f:
    rows = json.load(f)
  return [(r['id'], '\n\n'.join(r['steps']), golds[r['problem'].strip()],
           bool(r['final_answer_correct']))
          for r in rows if r['problem'].strip() in golds
          and (not all_steps_correct or r['label'] == -1)]


def label_agreement(items: Iterable[tuple[str, str, str, bool]]) -> dict:
  """How often grade(solution, gold) equals a human correctness label.

  Returns counts, the confusion matrix (grader verdict x label) and the
  disagreements.
  """
  n, agree, wrong = 0, 0, []
  confusion = {'grader_true_label_true': 0, 'grader_true_label_false': 0,
               'grader_false_label_true': 0, 'grader_false_label_false': 0}
  for item_id, text, gold, label in items:
    extracted = grader.extract_answer(text)
    ok = extracted is not None and grader.answers_match(extracted, gold)
    n += 1
    agree += ok == label
    confusion[f'grader_{str(ok).lower()}_label_{str(label).lower()}'] += 1
    if ok != label:
      wrong.append({'id': item_id, 'extracted': extracted, 'gold': gold,
                    'label': label})
  return {'n': n, 'agree': agree, 'rate': agree / max(n, 1),
          'confusion': confusion, 'disagreements': wrong}


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


def provenance(data_dir: pathlib.Path) -> dict[str, Any]:
  """Git commit (and whether the tree is dirty), machine and versions."""
  def git(*args):
    try:
      return subprocess.run(['git', '-C', str(REPO), *args], check=True,
                            capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
      return None
  versions = {}
  for package in ('sympy', 'math-verify', 'latex2sympy2_extended'):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  status = git('status', '--porcelain')
  return {
      'git_commit': git('rev-parse', 'HEAD'),
      'git_dirty': None if status is None else bool(status),
      'command': ' '.join(['python', os.path.relpath(sys.argv[0], REPO)] +
                          sys.argv[1:]),
      'data_dir': os.path.relpath(data_dir, REPO),
      'machine': {'node': platform.node(), 'platform': platform.platform(),
                  'processor': platform.processor() or platform.machine(),
                  'cpu_count': os.cpu_count(),
                  'python': sys.version.split()[0]},
      'versions': versions,
      'time': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
  }


def _line(name: str, r: dict) -> str:
  return (f'{name:34s} {r["agree"]:5d}/{r["n"]:<5d} = '
          f'{100 * r["rate"]:6.2f}%')


def compute_report(data_dir: pathlib.Path, gsm8k_train: bool = False,
                   verbose: bool = True) -> dict[str, Any]:
  """All figures, by kind (see the module docstring)."""
  say = print if verbose else (lambda *a, **k: None)
  splits = ['test'] + (['train'] if gsm8k_train else [])
  informative, controls, data_checks, sanity = {}, {}, {}, {}
  items = {'aime24': aime24_items(data_dir), 'math500': math500_items(data_dir)}
  for split in splits:
    for variant in ('full', 'no_hashes', 'calculator'):
      name = f'gsm8k_{split}' + ('' if variant == 'full' else f'/{variant}')
      items[name] = gsm8k_items(data_dir, split, variant)

  def measure(name, fn, *args):
    start = time.time()
    result = fn(*args)
    result['seconds'] = round(time.time() - start, 3)
    return result

  say('== Informative: can fail ==')
  for name in ['aime24'] + [f'gsm8k_{sp}/no_hashes' for sp in splits]:
    r = informative[name] = measure(name, agreement, items[name])
    say(_line(name, r))
    for d in r['disagreements']:
      say(f'    {d["id"]}: extracted={d["extracted"]!r} gold={d["gold"]!r}')
  for bench in ('gsm8k', 'math'):
    for subset, only_correct in (('labels', False),
                                 ('all_steps_correct', True)):
      name = f'processbench_{bench}_{subset}'
      pb = processbench_items(data_dir, bench, only_correct)
      r = informative[name] = measure(name, label_agreement, pb)
      say(_line(name, r) + f'  {r["confusion"]}')
      if not only_correct:
        for d in r['disagreements']:
          say(f'    {d["id"]}: extracted={d["extracted"]!r} '
              f'gold={d["gold"]!r} label={d["label"]}')
  say('== Negative controls: shuffled golds, should (almost) never match ==')
  for name in ('aime24', 'gsm8k_test/no_hashes', 'math500'):
    r = controls[f'{name}/shuffled'] = shuffled_false_matches(items[name])
    r['rate'] = r['false_matches'] / max(r['n'], 1)
    say(f'{name + "/shuffled":34s} {r["false_matches"]} false matches in '
        f'{r["n"]} pairs with different gold strings')
    for d in r['pairs']:
      say(f'    {d["id"]}: extracted={d["extracted"]!r} gold={d["gold"]!r}')
  say('== Data check: the last <<calculator>> result is the #### answer ==')
  for name in [f'gsm8k_{sp}/calculator' for sp in splits]:
    r = data_checks[name] = measure(name, agreement, items[name])
    r['note'] = ('a property of the data (the last annotation is often an '
                 'intermediate result), not of the grader')
    say(_line(name, r) + '  (a data property, not a grader figure)')
  say('== Sanity checks: tautological (gold is the extracted text itself) ==')
  for name in ['math500'] + [f'gsm8k_{sp}' for sp in splits]:
    r = sanity[name] = measure(name, agreement, items[name])
    r['note'] = ('answer field = the solution\'s own last box'
                 if name == 'math500' else
                 'gold = the #### line that is extracted')
    say(_line(name, r) + '  (cannot fail unless extraction breaks)')
  return {'informative': informative, 'negative_controls': controls,
          'data_checks': data_checks, 'sanity_checks': sanity}


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string('data_dir', None, 'Benchmark data directory.',
                      flag_values=fv)
  flags.DEFINE_string('output', 'grader_agreement.json',
                      'Where to write the JSON report.', flag_values=fv)
  flags.DEFINE_bool('gsm8k_train', False,
                    'Also measure on the GSM8K train split.', flag_values=fv)


def main(argv: Sequence[str], fv: flags.FlagValues | None = None) -> dict:
  """Runs on argv (program name first); returns what it wrote."""
  if fv is None:  # In-process (tests): private flags.
    fv = flags.FlagValues()
    define_flags(fv)
    argv = fv(list(argv))
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  data_dir = pathlib.Path(fv.data_dir) if fv.data_dir else default_data_dir()
  if not data_dir.exists():
    raise app.UsageError(f'no data at {data_dir}; pass --data_dir')
  grader.warmup()
  report = {'provenance': provenance(data_dir),
            **compute_report(data_dir, fv.gsm8k_train)}
  if os.path.dirname(fv.output):
    os.makedirs(os.path.dirname(fv.output), exist_ok=True)
  with open(fv.output, 'w') as f:
    json.dump(report, f, indent=1)
  print(f'wrote {fv.output}')
  return report


if __name__ == '__main__':
  # Defined here, not at import, so that tests can import this file.
  define_flags(flags.FLAGS)
  app.run(lambda argv: main(argv, flags.FLAGS) and None)
