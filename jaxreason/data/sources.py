"""Where SFT / RL records come from: the synthetic task or a JSONL file."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable, Mapping

import numpy as np

from jaxreason.data import synthetic


def read_jsonl(path: str, required: tuple[str, ...] = ()) -> list[dict]:
  """Reads a JSONL file; a malformed line raises naming the file and line."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: no such file')
  rows = []
  with open(path) as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f'{path}:{lineno}: not valid JSON ({e.msg})') from e
      if not isinstance(row, dict):
        raise ValueError(f'{path}:{lineno}: expected a JSON object')
      for key in required:
        if key not in row:
          raise ValueError(f'{path}:{lineno}: missing field {key!r} '
                           f'(fields: {sorted(row)})')
      rows.append(row)
  return rows


def arithmetic_config(task: Mapping[str, Any]) -> synthetic.ArithmeticConfig:
  """The task of one chain length (`num_steps` an int)."""
  task = dict(task)
  if 'ops' in task:
    task['ops'] = tuple(task['ops'])
  return synthetic.ArithmeticConfig(**task)


def arithmetic_configs(task: Mapping[str, Any]
                       ) -> list[synthetic.ArithmeticConfig]:
  """One task per chain length: `num_steps` is an int or a sequence of them.

  A sequence (e.g. (2, 3, 4, 5)) mixes difficulties: each problem draws its
  length uniformly (`_draw`).
  """
  steps = dict(task).get('num_steps', 4)
  if isinstance(steps, int):
    return [arithmetic_config(task)]
  steps = [int(s) for s in steps]
  if not steps:
    raise ValueError('task.num_steps: an empty sequence')
  return [arithmetic_config(dict(task, num_steps=s)) for s in steps]


# One question in HELD_OUT_BUCKETS belongs to the held-out split, decided by a
# stable hash of its text: every recipe's training draw (SFT, GRPO, DPO, any
# size, any seed) excludes it and every evaluation draws from it, so no
# held-out problem is ever a training problem anywhere in a pipeline.
HELD_OUT_BUCKETS = 16


def is_held_out(question: str) -> bool:
  """Whether a synthetic question belongs to the held-out split (by hash)."""
  digest = hashlib.sha256(question.encode('utf-8')).digest()
  return int.from_bytes(digest[:4], 'little') % HELD_OUT_BUCKETS == 0


def _draw(seed: int, n: int, cfgs: list[synthetic.ArithmeticConfig],
          keep: Callable[[str], bool], unique: bool) -> list:
  """The first n problems of the seed's stream whose question `keep`s.

  With several tasks (chain lengths) each problem first draws its task; with
  one, the stream is that task's alone.
  """
  rng = np.random.default_rng(seed)
  out, seen = [], set()
  for _ in range(max(1000, 100 * n)):
    if len(out) == n:
      return out
    cfg = cfgs[int(rng.integers(len(cfgs)))] if len(cfgs) > 1 else cfgs[0]
    p = synthetic.generate_problem(rng, cfg)
    if keep(p.question) and not (unique and p.question in seen):
      out.append(p)
      seen.add(p.question)
  if len(out) == n:
    return out
  raise ValueError(f'task {cfgs}: only {len(out)} of {n} problems found for '
                   'this split; the problem space is too small')


def train_problems(task: Mapping[str, Any], num: int,
                   seed: int) -> list[synthetic.Problem]:
  """`num` problems of `seed`'s stream, none of them held out."""
  return _draw(seed, num, arithmetic_configs(task),
               lambda q: not is_held_out(q), unique=False)


def synthetic_splits(task: Mapping[str, Any], num_train: int, num_eval: int,
                     seed: int) -> tuple[list, list]:
  """Train and held-out problems of the synthetic task.

  The split is by question (`is_held_out`), not by draw: train problems
  (a seeded draw, repeats possible) never include a held-out question, and
  held-out problems (distinct questions) are the same whatever num_train.
  """
  held_out = _draw(seed + 1_000_003, num_eval, arithmetic_configs(task),
                   is_held_out, unique=True)
  return train_problems(task, num_train, seed), held_out


def problem_record(p: synthetic.Problem) -> dict[str, Any]:
  """prompt / completion / answer strings, plus the Problem for checkers."""
  return {'prompt': synthetic.format_prompt(p), 'completion': p.solution,
          'answer': p.answer, 'problem': p}


def sft_records(data: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
  """(train, eval) records with 'prompt', 'completion' (and 'answer')."""
  source = data.get('source', 'synthetic')
  if source == 'synthetic':
    train, held_out = synthetic_splits(
        data['task'], int(data['num_train']), int(data.get('num_eval', 0)),
        int(data.get('seed', 0)))
    return [problem_record(p) for p in train], [
        problem_record(p) for p in held_out]
  if source == 'jsonl':
    pk = data.get('prompt_key', 'prompt')
    ck = data.get('completion_key', 'completion')
    rows = read_jsonl(data['path'], (pk, ck))
    recs = [{'prompt': r[pk], 'completion': r[ck],
             **({'answer': str(r['answer'])} if 'answer' in r else {})}
            for r in rows]
    n_eval = int(data.get('num_eval', 0))
    return recs[n_eval:], recs[:n_eval]
  raise ValueError(f"data.source={source!r}: expected 'synthetic' or 'jsonl'")


def rl_records(data: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
  """(train, eval) prompts with gold answers for RL and evaluation.

  Each record has 'prompt' and 'answer' (and 'completion' when a reference
  solution exists, e.g. for SFT warm-up or DPO's chosen responses).
  """
  source = data.get('source', 'synthetic')
  if source == 'synthetic':
    return sft_records(data)
  if source == 'jsonl':
    pk = data.get('prompt_key', 'prompt')
    ak = data.get('answer_key', 'answer')
    rows = read_jsonl(data['path'], (pk, ak))
    recs = [{'prompt': r[pk], 'answer': str(r[ak])} for r in rows]
    n_eval = int(data.get('num_eval', 0))
    return recs[n_eval:], recs[:n_eval]
  raise ValueError(f"data.source={source!r}: expected 'synthetic' or 'jsonl'")


# Preference data (DPO) and teacher traces (distillation SFT) ------------------


def _as_list(value: Any) -> list[str]:
  if value is None:
    return []
  return [str(v) for v in value] if isinstance(value, (list, tuple)) else [
      str(value)]


def preference_records(data: Mapping[str, Any]) -> tuple[list[dict],
                                                          list[dict]]:
  """(train, eval) records for DPO: `rl_records` plus 'chosen' candidates.

  'chosen' lists responses from a stronger source, best first; the recipe
  keeps the first one the reward function verifies. Synthetic task: the
  generator's reference solution. JSONL: the row's `chosen_key` field
  (default 'chosen', a string or a list), then the responses to the same
  prompt in `teacher_path` (a JSONL of `teacher_prompt_key` /
  `teacher_completion_key`, default 'prompt' / 'completion'), if given.
  """
  source = data.get('source', 'synthetic')
  if source == 'synthetic':
    train, held_out = sft_records(data)
    return [r | {'chosen': [r['completion']]} for r in train], held_out
  if source != 'jsonl':
    raise ValueError(f"data.source={source!r}: expected 'synthetic' or "
                     "'jsonl'")
  pk = data.get('prompt_key', 'prompt')
  ak = data.get('answer_key', 'answer')
  chosen_key = data.get('chosen_key', 'chosen')
  teacher: dict[str, list[str]] = {}
  if data.get('teacher_path'):
    tpk = data.get('teacher_prompt_key', 'prompt')
    tck = data.get('teacher_completion_key', 'completion')
    for row in read_jsonl(data['teacher_path'], (tpk, tck)):
      teacher.setdefault(row[tpk], []).append(str(row[tck]))
  rows = read_jsonl(data['path'], (pk, ak))
  recs = [{'prompt': r[pk], 'answer': str(r[ak]),
           'chosen': _as_list(r.get(chosen_key)) + teacher.get(r[pk], [])}
          for r in rows]
  n_eval = int(data.get('num_eval', 0))
  return recs[n_eval:], recs[:n_eval]


def teacher_trace(problem: synthetic.Problem, rng: Any,
                  reflect_prob: float = 0.5) -> str:
  """A long chain of thought ending in the reference solution (o1 style).

  Inside <think>...</think> each step is worked out (with the reduction mod
  m written out); with probability `reflect_prob` one step first slips and
  is then caught and redone ("Wait, ..."), as reasoning models' traces do.
  After the thinking comes the plain solution, so the last \\boxed{} holds
  the answer and the synthetic checker grades the trace like a solution.
  """
  rng = rng if isinstance(rng, np.random.Generator) else (
      np.random.default_rng(rng))
  slip = int(rng.integers(problem.num_steps)) if (
      rng.random() < reflect_prob) else -1
  lines = ['<think>']
  for i, (a, op, b, r) in enumerate(zip(problem.inputs, problem.ops,
                                        problem.operands, problem.values)):
    raw = synthetic.apply_op(a, op, b, None)
    work = f'{a}{op}{b}={raw}'
    if problem.modulus is not None and raw != r:
      work += f', mod {problem.modulus} is {r}'
    if i == slip:
      if problem.modulus is not None:  # Any other residue.
        wrong = (r + int(rng.integers(1, problem.modulus))) % problem.modulus
      else:
        wrong = r + int(rng.choice([-1, 1])) * int(rng.integers(1, 10))
      lines.append(f'Step {i + 1}: {a}{op}{b}={wrong}.')
      lines.append(f'Wait, check it: {work}. So {a}{op}{b}={r}.')
    else:
      lines.append(f'Step {i + 1}: {work}.')
  lines.append(f'The answer is {problem.answer}.')
  lines.append('</think>')
  return '\n'.join(lines) + '\n' + problem.solution


def write_synthetic_traces(path: str, task: Mapping[str, Any], num: int, *,
                           seed: int = 0, reflect_prob: float = 0.5,
                           prompt_key: str = 'prompt',
                           completion_key: str = 'completion') -> str:
  """Writes `num` synthetic problems with teacher traces as JSONL; returns path.

  Rows: prompt_key, completion_key (the `teacher_trace`) and 'answer'. A
  stand-in for a file of a reasoning model's long-CoT traces, so that the
  distillation recipe runs without one.
  """
  problems = train_problems(task, num, seed)  # None held out.
  rng = np.random.default_rng([seed, 1])
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + '.tmp', 'w') as f:
    for p in problems:
      f.write(json.dumps({prompt_key: synthetic.format_prompt(p),
                          completion_key: teacher_trace(p, rng, reflect_prob),
                          'answer': p.answer}) + '\n')
  os.replace(path + '.tmp', path)
  return path
