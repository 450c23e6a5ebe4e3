"""Reward functions from a config, for the recipes.

  reward = dict(kind='synthetic', accuracy=1.0, step=0.0, format=0.0)
  reward_fn = make_reward_fn(reward, tokenizer)
  reward_fn(texts, records) -> float32 [N]

kind='synthetic': exact checks of the arithmetic task (`accuracy`: the last
\\boxed{} equals the gold answer; `step`: share of correct steps, a dense
process reward; `format`: the solution parses as steps + a box).
kind='math': the answer grader (`accuracy` via `rewards.grader.grade`).
kind='python': fn='package.module:function', called as reward_fn(texts, records).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from jaxreason.data import synthetic
from jaxreason.data.tokenizer import Tokenizer

RewardFn = Callable[[Sequence[str], Sequence[Mapping[str, Any]]], np.ndarray]


def _synthetic_problem(record: Mapping[str, Any]) -> synthetic.Problem | None:
  return record.get('problem')


def synthetic_reward_fn(weights: Mapping[str, float]) -> RewardFn:
  """Weighted accuracy / step / format rewards of the arithmetic task."""
  w_acc = float(weights.get('accuracy', 1.0))
  w_step = float(weights.get('step', 0.0))
  w_fmt = float(weights.get('format', 0.0))

  def fn(texts, records):
    out = np.zeros(len(texts), np.float32)
    for i, (text, rec) in enumerate(zip(texts, records)):
      boxed = synthetic.extract_boxed(text)
      acc = float(boxed is not None and boxed.strip() == str(rec['answer']))
      total = w_acc * acc
      if w_step or w_fmt:
        problem = _synthetic_problem(rec)
        if problem is not None:
          check = synthetic.check_solution(problem, text)
          if w_step:
            total += w_step * float(np.mean(check.step_correct))
          if w_fmt:
            total += w_fmt * float(check.well_formed)
        elif w_fmt:
          total += w_fmt * float(boxed is not None)
      out[i] = total
    return out

  return fn


def math_reward_fn(weights: Mapping[str, float]) -> RewardFn:
  from jaxreason.rewards import grader  # pylint: disable=g-import-not-at-top
  w_acc = float(weights.get('accuracy', 1.0))

  def fn(texts, records):
    return np.asarray([w_acc * float(grader.grade(t, str(r['answer'])))
                       for t, r in zip(texts, records)], np.float32)

  return fn


def make_reward_fn(cfg: Mapping[str, Any], tokenizer: Tokenizer | None = None
                   ) -> RewardFn:
  """Reward function from `config.reward` (see module docstring)."""
  del tokenizer  # Token-length rewards read lengths from the rollouts.
  cfg = dict(cfg)
  kind = cfg.pop('kind', 'synthetic')
  cfg.pop('correct_threshold', None)
  if kind == 'synthetic':
    return synthetic_reward_fn(cfg)
  if kind == 'math':
    return math_reward_fn(cfg)
  if kind == 'python':  # A user function 'package.module:name'.
    module, _, name = str(cfg['fn']).partition(':')
    return getattr(importlib.import_module(module), name)
  raise ValueError(f"reward.kind={kind!r}: expected 'synthetic', 'math' or "
                   "'python' (with fn='module:function')")
