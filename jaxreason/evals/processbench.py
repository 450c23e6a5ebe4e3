"""ProcessBench: find the earliest wrong step of a solution (or say there is none).

  scores = processbench_scores(predictions, labels)
  # {'acc_erroneous', 'acc_correct', 'f1', 'num_erroneous', 'num_correct'}

A prediction is the index of the earliest wrong step, -1 for "no error", or
None (no parsable answer: counted as wrong). Accuracy is computed
separately on the erroneous solutions (label >= 0: the prediction must be
exactly the label) and on the correct ones (label -1: the prediction must
be -1); F1 is their harmonic mean (0 when both are 0), per subset, and the
table's average is the mean of the subsets' F1.

Scalar PRMs predict `first_below(step_scores, threshold)`. The reference
protocol picks the threshold that maximises F1 on the gsm8k subset and
reuses it on every subset (`threshold_protocol`); the per-subset best
threshold is reported only as an oracle upper bound. Verifiers that predict
the step themselves (`Judgement.first_error` not None: ThinkPRM, judges)
are used as they are.

Data: <data_dir>/processbench/{gsm8k,math,olympiadbench,omnimath}.json,
each a JSON array of {id, generator, problem, steps, final_answer_correct,
label}; records with missing fields are reported by id and skipped.
`synthetic_processbench` builds a set in the same format from the
arithmetic task's held-out questions.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from jaxreason.data import paths, sources, step_labels
from jaxreason.verifiers.base import Judgement, Verifier, first_below

SUBSETS = ('gsm8k', 'math', 'olympiadbench', 'omnimath')


def processbench_scores(predictions: Sequence[int | None],
                        labels: Sequence[int]) -> dict[str, float]:
  """acc_erroneous, acc_correct, f1 (fractions) of one subset."""
  if len(predictions) != len(labels):
    raise ValueError(f'{len(predictions)} predictions, {len(labels)} labels')
  err = [(p, l) for p, l in zip(predictions, labels) if l != -1]
  cor = [(p, l) for p, l in zip(predictions, labels) if l == -1]
  acc_err = (sum(p is not None and p == l for p, l in err) / len(err)
             if err else 0.0)
  acc_cor = (sum(p is not None and p == -1 for p, _ in cor) / len(cor)
             if cor else 0.0)
  f1 = (2 * acc_err * acc_cor / (acc_err + acc_cor)
        if acc_err + acc_cor > 0 else 0.0)
  return {'acc_erroneous': acc_err, 'acc_correct': acc_cor, 'f1': f1,
          'num_erroneous': len(err), 'num_correct': len(cor)}


# Data ----------------------------------------------------------------------------


def balanced_head(records: Sequence[Mapping[str, Any]], limit: int
                  ) -> list[Mapping[str, Any]]:
  """The first limit // 2 correct (label -1) and the first erroneous records
  up to `limit` (topped up from either class when one runs out), in file
  order: a small subset that still has both accuracies."""
  cor = [i for i, r in enumerate(records) if r['label'] == -1]
  err = [i for i, r in enumerate(records) if r['label'] != -1]
  take = cor[:limit // 2]
  take += err[:limit - len(take)]
  take += [i for i in cor if i not in take][:limit - len(take)]
  return [records[i] for i in sorted(take)]


def read_subset(path: str | os.PathLike, limit: int = 0
                ) -> tuple[list[dict], list[dict]]:
  """(records, bad) of one subset file; bad = [{'id', 'missing'}].

  limit > 0 keeps `balanced_head(records, limit)`.
  """
  good, bad = step_labels.read_processbench_file(
      str(paths.require(pathlib.Path(path), 'ProcessBench subset')))
  return (balanced_head(good, limit) if limit else good), bad


def read_processbench(data_dir: str | os.PathLike | None = None,
                      subsets: Sequence[str] = SUBSETS, limit: int = 0
                      ) -> tuple[dict[str, list[dict]], dict[str, list]]:
  """{subset: records}, {subset: bad records} from <data_dir>/processbench."""
  root = paths.data_dir(data_dir) / 'processbench'
  data, bad = {}, {}
  for s in subsets:
    data[s], bad[s] = read_subset(root / f'{s}.json', limit)
  return data, bad


def synthetic_processbench(task: Mapping[str, Any], num: int, *, seed: int = 0,
                           error_fraction: float = 0.5) -> list[dict]:
  """ProcessBench-format records from held-out synthetic questions.

  Questions come from the held-out split (`sources.is_held_out`), so no
  PRM trained by `recipes.prm` has seen them. A share `error_fraction` of
  solutions has one injected error (label = its step), the rest are the
  reference solutions (label -1). Steps include the final `\\boxed{}` block.
  """
  _, problems = sources.synthetic_splits(task, 0, num, seed)
  rng = np.random.default_rng(seed + 17)
  out = []
  for i, p in enumerate(problems):
    ex = step_labels.synthetic_example(p, rng, rng.random() < error_fraction,
                                       id_=f'synthetic-{i}')
    out.append({'id': ex.id, 'generator': 'synthetic', 'problem': ex.question,
                'steps': list(ex.steps), 'label': ex.first_wrong_step,
                'final_answer_correct': ex.answer_correct})
  return out


# Thresholds ------------------------------------------------------------------------


def candidate_thresholds(step_scores: Sequence[Sequence[float] | None]
                         ) -> np.ndarray:
  """Every distinct score's midpoints (each gives a different prediction set)."""
  s = np.unique([x for sc in step_scores if sc for x in sc
                 if np.isfinite(x)])
  if not len(s):
    return np.asarray([0.5])
  mids = (s[1:] + s[:-1]) / 2
  return np.concatenate([[s[0] - 1e-6], mids, [s[-1] + 1e-6]])


def predict(judgements: Sequence[Judgement],
            threshold: float | None) -> list[int | None]:
  """Predicted earliest wrong step of each judgement.

  A judgement's own `first_error` wins; otherwise `first_below` its step
  scores at `threshold` (None when it has neither).
  """
  out = []
  for j in judgements:
    if j.first_error is not None or threshold is None:
      out.append(j.first_error)
    else:
      out.append(first_below(j.step_scores, threshold))
  return out


def best_threshold(judgements: Sequence[Judgement], labels: Sequence[int]
                   ) -> tuple[float, dict[str, float]]:
  """The threshold maximising F1 (the lowest of ties), and its scores."""
  best = None
  for t in candidate_thresholds([j.step_scores for j in judgements]):
    sc = processbench_scores(predict(judgements, float(t)), labels)
    if best is None or sc['f1'] > best[1]['f1'] + 1e-12:
      best = (float(t), sc)
  return best


def threshold_protocol(judgements: Mapping[str, Sequence[Judgement]],
                       labels: Mapping[str, Sequence[int]], *,
                       pick_on: str = 'gsm8k',
                       threshold: float | None = None) -> dict[str, Any]:
  """Reference protocol: one threshold (best F1 on `pick_on`) for all subsets.

  With `threshold` given it is used as is. Returns {'threshold',
  'subsets': {name: scores + 'oracle_threshold', 'oracle_f1'},
  'average_f1', 'average_oracle_f1'}. Verifiers that predict the step
  themselves ignore thresholds (their oracle is their score).
  """
  if threshold is None:
    if pick_on not in judgements:
      raise ValueError(f'pick_on={pick_on!r} is not among the subsets '
                       f'{sorted(judgements)}')
    threshold, _ = best_threshold(judgements[pick_on], labels[pick_on])
  subsets = {}
  for name, js in judgements.items():
    sc = processbench_scores(predict(js, threshold), labels[name])
    t, oracle = best_threshold(js, labels[name])
    subsets[name] = dict(sc, oracle_threshold=t, oracle_f1=oracle['f1'])
  return {'threshold': threshold, 'subsets': subsets,
          'average_f1': float(np.mean([s['f1'] for s in subsets.values()])),
          'average_oracle_f1': float(np.mean(
              [s['oracle_f1'] for s in subsets.values()]))}


# Running a verifier ---------------------------------------------------------------


def judge_records(verifier: Verifier, records: Sequence[Mapping[str, Any]],
                  batch_size: int = 64) -> list[Judgement]:
  """The verifier's judgements of ProcessBench records, in batches.

  A batch that raises is recorded as unjudged (step_scores None, the error
  in info), never stops the run.
  """
  out = []
  for b in range(0, len(records), batch_size):
    chunk = records[b:b + batch_size]
    try:
      out.extend(verifier.judge([r['problem'] for r in chunk],
                                [list(r['steps']) for r in chunk]))
    except Exception as e:  # pylint: disable=broad-except
      out.extend(Judgement(None, info={'error': repr(e)}) for _ in chunk)
  return out


def evaluate_verifier(verifier: Verifier,
                      subsets: Mapping[str, Sequence[Mapping[str, Any]]], *,
                      pick_on: str = 'gsm8k',
                      threshold: float | None = None,
                      bad: Mapping[str, list] | None = None
                      ) -> dict[str, Any]:
  """Judges every subset and applies `threshold_protocol`; adds tokens spent.

  `pick_on` must be one of `subsets` unless `threshold` is given.
  """
  judgements = {n: judge_records(verifier, r) for n, r in subsets.items()}
  labels = {n: [int(x['label']) for x in r] for n, r in subsets.items()}
  res = threshold_protocol(judgements, labels, pick_on=pick_on,
                           threshold=threshold)
  for n, js in judgements.items():
    res['subsets'][n]['tokens'] = int(sum(j.tokens for j in js))
    res['subsets'][n]['unjudged'] = int(sum(not j.ok for j in js))
    res['subsets'][n]['steps'] = int(sum(len(r['steps']) for r in subsets[n]))
    res['subsets'][n]['unscored_steps'] = int(sum(
        j.info.get('unscored_steps', 0) for j in js))
    if bad is not None:
      res['subsets'][n]['bad_records'] = list(bad.get(n, []))
  res['pick_on'] = pick_on
  return res


def markdown_table(result: Mapping[str, Any], title: str = '') -> str:
  """One row per subset (percent), then the average F1."""
  lines = [f'### {title}', ''] if title else []
  lines += [f"Threshold {result['threshold']:.4f} (picked on "
            f"{result.get('pick_on', 'gsm8k')}); oracle = per-subset best "
            'threshold, an upper bound only.', '',
            '| subset | n err | n cor | acc err | acc cor | F1 | oracle F1 |',
            '|---|---|---|---|---|---|---|']
  for name, s in result['subsets'].items():
    lines.append(f"| {name} | {s['num_erroneous']} | {s['num_correct']} | "
                 f"{100 * s['acc_erroneous']:.1f} | "
                 f"{100 * s['acc_correct']:.1f} | {100 * s['f1']:.1f} | "
                 f"{100 * s['oracle_f1']:.1f} |")
  lines.append(f"| average | | | | | {100 * result['average_f1']:.1f} | "
               f"{100 * result['average_oracle_f1']:.1f} |")
  return '\n'.join(lines) + '\n'


def write_results(workdir: str, name: str, result: Mapping[str, Any],
                  title: str = '') -> tuple[str, str]:
  """workdir/<name>.json and workdir/<name>.md; returns their paths."""
  os.makedirs(workdir, exist_ok=True)
  jpath = os.path.join(workdir, f'{name}.json')
  mpath = os.path.join(workdir, f'{name}.md')
  with open(jpath, 'w') as f:
    json.dump(result, f, indent=1, default=str)
  with open(mpath, 'w') as f:
    f.write(markdown_table(result, title or name))
  return jpath, mpath


def labels_of(records: Sequence[Mapping[str, Any]]) -> list[int]:
  return [int(r['label']) for r in records]



def synthetic_dev_test(task: Mapping[str, Any], num: int, *, seed: int = 0,
                       error_fraction: float = 0.5
                       ) -> dict[str, list[dict]]:
  """Two disjoint held-out synthetic subsets: 'dev' picks the threshold,
  'test' reports it (`num` records each, distinct questions)."""
  recs = synthetic_processbench(task, 2 * num, seed=seed,
                                error_fraction=error_fraction)
  return {'dev': recs[:num], 'test': recs[num:]}
