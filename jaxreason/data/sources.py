"""Where SFT / RL records come from: the synthetic task or a JSONL file."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

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
  task = dict(task)
  if 'ops' in task:
    task['ops'] = tuple(task['ops'])
  return synthetic.ArithmeticConfig(**task)


def synthetic_splits(task: Mapping[str, Any], num_train: int, num_eval: int,
                     seed: int) -> tuple[list, list]:
  """Train and held-out problems; held-out questions never occur in train."""
  cfg = arithmetic_config(task)
  train = synthetic.generate_dataset(seed, num_train, cfg)
  seen = {p.question for p in train}
  held_out = []
  eval_seed = seed + 1_000_003
  while len(held_out) < num_eval:
    batch = synthetic.generate_dataset(eval_seed, 4 * num_eval, cfg)
    held_out += [p for p in batch if p.question not in seen]
    seen.update(p.question for p in batch)
    eval_seed += 1
  return train, held_out[:num_eval]


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
