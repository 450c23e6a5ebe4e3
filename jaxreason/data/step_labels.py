"""Step-labelled solutions for process reward models, and their tokenisation.

A `StepExample` is a question, its solution's steps and one label per step:
the probability that the solution *up to and including* that step is
correct (1 / 0 for gold labels, a share of successful rollouts for
Math-Shepherd labels). So the steps after the first wrong one are labelled
0 too; `losses.reward.step_bce_loss(first_error_only=True)` ignores them.

Sources:
  synthetic_examples   the arithmetic task: reference solutions (all 1) and
                       `make_flawed_solution`s with a known first wrong step.
  checked_example      any solution text of the arithmetic task (e.g. a
                       policy sample) labelled by the exact step checker.
  read_prm800k         PRM800K JSONL (`question.problem`,
                       `label.steps[].completions[].rating` in {-1, 0, +1},
                       `label.steps[].chosen_completion`,
                       `label.finish_reason`).
  processbench_example a ProcessBench record (id, problem, steps, label,
                       final_answer_correct); `missing_fields` checks one.

Tokenisation (`encode_example`) follows TRL's PRMTrainer: the prompt, then
each step tokenised on its own followed by the separator's token ids (the
separator is never appended to the text before tokenising, which would let
it merge with the step's last characters and move the scoring positions);
the step's label sits on the separator's last token, every other token is
masked.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from jaxreason.data import sources, synthetic
from jaxreason.data.synthetic.flawed import ERROR_KINDS
from jaxreason.data.tokenizer import Tokenizer

SEPARATOR = '\n\n'  # Steps are the blocks between blank lines.
PROCESSBENCH_FIELDS = ('id', 'problem', 'steps', 'label',
                       'final_answer_correct')


@dataclasses.dataclass(frozen=True)
class StepExample:
  """A solution with a label per step (see module docstring).

  Attributes:
    question: The problem text.
    steps: The solution's steps.
    labels: P(solution correct up to step i), one per step.
    answer_correct: Whether the final answer is right (ORM / ranking label).
    group: Id of the question (responses to one question share it).
    id: Where it came from (record id, file:line).
    first_wrong_step: Gold index of the earliest wrong step, -1 if none.
  """
  question: str
  steps: tuple[str, ...]
  labels: tuple[float, ...]
  answer_correct: bool
  group: int = 0
  id: str = ''
  first_wrong_step: int = -1


def prefix_labels(num_steps: int, first_wrong: int) -> tuple[float, ...]:
  """1 before the first wrong step, 0 from it on (all 1 if it is -1)."""
  if first_wrong < 0:
    return (1.0,) * num_steps
  return tuple(1.0 if i < first_wrong else 0.0 for i in range(num_steps))


# Synthetic task --------------------------------------------------------------


def synthetic_example(problem: synthetic.Problem, rng: np.random.Generator,
                      flawed: bool, group: int = 0,
                      id_: str = '') -> StepExample:
  """The reference solution, or a flawed one with a uniform first error.

  Steps are the blocks of the solution text, the final `\\boxed{}` block
  included (it is right exactly when every step before it is).
  """
  if flawed:
    kind = ERROR_KINDS[int(rng.integers(len(ERROR_KINDS)))]
    sol = synthetic.make_flawed_solution(rng, problem, error_kind=kind)
    text, first, ok = sol.text, sol.first_wrong_step, sol.answer_correct
  else:
    text, first, ok = problem.solution, -1, True
  steps = tuple(synthetic.split_steps(text))
  return StepExample(question=synthetic.format_prompt(problem).rstrip('\n'),
                     steps=steps, labels=prefix_labels(len(steps), first),
                     answer_correct=ok, group=group, id=id_,
                     first_wrong_step=first)


def synthetic_examples(problems: Sequence[synthetic.Problem], *,
                       group_size: int, flawed_prob: float,
                       seed: int) -> list[StepExample]:
  """`group_size` solutions per problem, each flawed with `flawed_prob`.

  A group (one question) always holds at least one reference solution and,
  when group_size > 1, at least one flawed one, so ranking losses have a
  pair in every group.
  """
  rng = np.random.default_rng(seed)
  out = []
  for g, p in enumerate(problems):
    flawed = rng.random(group_size) < flawed_prob
    if group_size > 1:
      flawed[0], flawed[1] = False, True
    for j, f in enumerate(flawed):
      out.append(synthetic_example(p, rng, bool(f), group=g,
                                   id_=f'synthetic-{g}-{j}'))
  return out


def checked_example(problem: synthetic.Problem, solution_text: str,
                    group: int = 0, id_: str = '') -> StepExample:
  """A solution someone wrote (e.g. a policy sample), labelled by the task's
  exact step checker (`check_solution`), as PRM800K's raters label samples.

  Every block of the text is a step, the `\\boxed{}` block included: it is
  right when every step before it is, the solution has the problem's number
  of steps, and the boxed answer is right. Steps from the first wrong block
  on are labelled 0.
  """
  blocks = tuple(synthetic.split_steps(solution_text))
  check = synthetic.check_solution(problem, solution_text)
  ok = []
  for i, block in enumerate(blocks):
    if block.startswith('\\boxed{'):
      ok.append(all(ok) and i == problem.num_steps and check.answer_correct)
    else:
      ok.append(i < problem.num_steps and check.step_correct[i])
  first = ok.index(False) if False in ok else -1
  return StepExample(question=synthetic.format_prompt(problem).rstrip('\n'),
                     steps=blocks, labels=prefix_labels(len(blocks), first),
                     answer_correct=check.answer_correct, group=group,
                     id=id_, first_wrong_step=first)


# PRM800K ---------------------------------------------------------------------


def read_prm800k(path: str, *, neutral: float | None = 1.0,
                 finish_reasons: Sequence[str] = ('solution', 'found_error')
                 ) -> tuple[list[StepExample], dict[str, Any]]:
  """PRM800K JSONL -> examples, plus a report of what was skipped and why.

  Each line is one labelled solution. Steps are walked in order; at step i:
    * `chosen_completion` is an index: that completion is the step (the
      labeller's choice among the sampled alternatives) and its rating the
      label;
    * it is null: the labeller stopped here. If some completion is rated -1
      the first such one is the last step (label 0, the first error);
      otherwise the solution ends before this step.
    * `human_completion` (a labeller's rewrite) is never used: it is not
      model text. The walk stops at the first -1.
  Ratings: +1 -> 1.0, -1 -> 0.0, 0 (neutral, "reasonable but not helpful")
  -> `neutral` (default 1.0, as most open PRMs count it correct; None: the
  step gets NaN, which `encode_example` masks out of the loss).
  Only solutions whose `label.finish_reason` is in `finish_reasons` are kept
  ('give_up' and 'bad_problem' are not solutions with labels); records with
  missing fields are reported by their id (`file:line`) in `report['bad']`.
  """
  rating_label = {1: 1.0, -1: 0.0, 0: np.nan if neutral is None else neutral}
  examples, bad, skipped = [], [], 0
  questions: dict[str, int] = {}
  for lineno, row in enumerate(sources.read_jsonl(path), 1):
    rid = f'{path}:{lineno}'
    try:
      problem = row['question']['problem']
      label = row['label']
      finish = label['finish_reason']
      raw_steps = label['steps']
    except (KeyError, TypeError) as e:
      bad.append({'id': rid, 'missing': str(e)})
      continue
    if finish not in finish_reasons:
      skipped += 1
      continue
    steps, labels = [], []
    try:
      for s in raw_steps:
        comps = s['completions'] or []
        chosen = s.get('chosen_completion')
        if chosen is None:
          wrong = [c for c in comps if c.get('rating') == -1]
          if wrong:
            steps.append(wrong[0]['text'])
            labels.append(0.0)
          break
        c = comps[chosen]
        steps.append(c['text'])
        labels.append(rating_label.get(c['rating'], np.nan))
        if c['rating'] == -1:
          break
    except (KeyError, TypeError, IndexError) as e:
      bad.append({'id': rid, 'missing': f'step fields: {e!r}'})
      continue
    if not steps:
      skipped += 1
      continue
    first = next((i for i, l in enumerate(labels) if l == 0.0), -1)
    examples.append(StepExample(
        question=problem, steps=tuple(steps), labels=tuple(labels),
        answer_correct=finish == 'solution' and first < 0,
        group=questions.setdefault(problem, len(questions)), id=rid,
        first_wrong_step=first))
  report = {'examples': len(examples), 'skipped_finish_reason_or_empty':
            skipped, 'bad': bad}
  return examples, report


# ProcessBench ----------------------------------------------------------------


def missing_fields(record: Any) -> list[str]:
  """The ProcessBench fields a record lacks or has of the wrong type."""
  if not isinstance(record, Mapping):
    return list(PROCESSBENCH_FIELDS)
  out = [k for k in PROCESSBENCH_FIELDS if k not in record]
  if 'steps' in record and not (isinstance(record['steps'], list) and all(
      isinstance(s, str) for s in record['steps'])):
    out.append('steps (a list of strings)')
  if 'label' in record and not isinstance(record['label'], int):
    out.append('label (an int)')
  return out


def processbench_example(record: Mapping[str, Any],
                         group: int = 0) -> StepExample:
  """A ProcessBench record as gold step labels (label = first wrong, -1)."""
  steps = tuple(record['steps'])
  first = int(record['label'])
  return StepExample(question=record['problem'], steps=steps,
                     labels=prefix_labels(len(steps), first),
                     answer_correct=bool(record['final_answer_correct']),
                     group=group, id=str(record['id']),
                     first_wrong_step=first)


def read_processbench_file(path: str) -> tuple[list[dict], list[dict]]:
  """A JSON array (or JSONL) of records -> (good records, bad with reasons)."""
  with open(path) as f:
    text = f.read()
  try:
    rows = json.loads(text)
  except json.JSONDecodeError:
    rows = [json.loads(l) for l in text.splitlines() if l.strip()]
  if not isinstance(rows, list):
    raise ValueError(f'{path}: expected a JSON array of records')
  good, bad = [], []
  for i, r in enumerate(rows):
    miss = missing_fields(r)
    if miss:
      rid = r.get('id', f'{path}[{i}]') if isinstance(r, Mapping) else (
          f'{path}[{i}]')
      bad.append({'id': rid, 'missing': miss})
    else:
      good.append(r)
  return good, bad


# Tokenisation ------------------------------------------------------------------


def safe_encode(tokenizer: Tokenizer, text: str) -> list[int]:
  """tokenizer.encode, with characters it cannot encode replaced by '?'."""
  try:
    return tokenizer.encode(text)
  except (ValueError, KeyError):
    out = []
    for ch in text:
      try:
        out.extend(tokenizer.encode(ch))
      except (ValueError, KeyError):
        out.extend(tokenizer.encode('?'))
    return out


def encode_example(tokenizer: Tokenizer, question: str,
                   steps: Sequence[str], labels: Sequence[float] | None,
                   *, separator_ids: Sequence[int], max_len: int,
                   max_prompt_len: int | None = None) -> dict[str, Any]:
  """TRL-style PRM tokens: prompt, then per step (step ids + separator ids).

  The prompt is BOS (if the tokenizer has one) + `question` + '\\n' (the
  synthetic task's `format_prompt`), cut to its last `max_prompt_len`
  tokens (BOS kept) as TRL does. Steps that do not fit in `max_len` tokens
  are dropped (they get no score and no label).
  Returns tokens [L] int32, label_positions [S'] (index of each kept step's
  separator's last token), labels [S'] float32 (NaN if `labels` is None),
  num_steps_kept = S'.
  """
  assert separator_ids, 'separator_ids must not be empty'
  prompt = safe_encode(tokenizer, question + '\n')
  if max_prompt_len:
    prompt = prompt[-max_prompt_len:]
  if tokenizer.bos_id is not None:
    prompt = [tokenizer.bos_id] + prompt
  tokens = list(prompt[:max_len])
  positions, kept = [], []
  for i, step in enumerate(steps):
    ids = safe_encode(tokenizer, step) + list(separator_ids)
    if len(tokens) + len(ids) > max_len:
      break
    tokens.extend(ids)
    positions.append(len(tokens) - 1)
    kept.append(np.nan if labels is None else float(labels[i]))
  return {'tokens': np.asarray(tokens, np.int32),
          'label_positions': np.asarray(positions, np.int32),
          'labels': np.asarray(kept, np.float32),
          'num_steps_kept': len(positions)}


def batch_arrays(encoded: Iterable[Mapping[str, Any]], width: int
                 ) -> dict[str, np.ndarray]:
  """Right-padded [N, W] tokens, segment_ids, labels, label_mask; last [N].

  label_mask is 1 at scored positions with a finite label; `last` is the
  index of each row's last token (the ORM's scoring position).
  """
  enc = list(encoded)
  n = len(enc)
  out = {'tokens': np.zeros((n, width), np.int32),
         'segment_ids': np.zeros((n, width), np.int32),
         'labels': np.zeros((n, width), np.float32),
         'label_mask': np.zeros((n, width), np.float32),
         'last': np.zeros((n,), np.int32)}
  for i, e in enumerate(enc):
    t = e['tokens'][:width]
    out['tokens'][i, :len(t)] = t
    out['segment_ids'][i, :len(t)] = 1
    out['last'][i] = max(len(t) - 1, 0)
    for p, l in zip(e['label_positions'], e['labels']):
      if p < width and np.isfinite(l):
        out['labels'][i, p] = l
        out['label_mask'][i, p] = 1.0
  return out
