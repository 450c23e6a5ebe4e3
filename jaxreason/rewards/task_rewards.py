"""Reward functions from a config, for the recipes.

  reward = dict(kind='synthetic', accuracy=1.0, step=0.0, format=0.0)
  reward_fn = make_reward_fn(reward, tokenizer)
  reward_fn(texts, records) -> float32 [N]

kind='synthetic': exact checks of the arithmetic task (`accuracy`: the last
\\boxed{} equals the gold answer; `step`: share of correct steps, a dense
process reward; `format`: the solution parses as steps + a box).
kind='math': `math_rewards.rewards_from_config` over the records' 'answer'
  field, each entry a weight or {'weight': w, **options}:
    dict(kind='math', accuracy=1.0,
         overlong={'weight': 1.0, 'max_len': 4096, 'cache_len': 512})
  Token lengths (cosine, overlong) are the tokenizer's lengths of the texts.
kind='python': fn='package.module:function', called as reward_fn(texts, records).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from jaxreason.data import synthetic
from jaxreason.data.tokenizer import Tokenizer
from jaxreason.rewards import math_rewards

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


def math_reward_fn(cfg: Mapping[str, Any],
                   tokenizer: Tokenizer | None = None) -> RewardFn:
  """The named `math_rewards` (weight or {'weight', **options}) as a RewardFn."""
  entries = {name: dict(v) if isinstance(v, Mapping) else {'weight': float(v)}
             for name, v in cfg.items()} or {'accuracy': {'weight': 1.0}}
  combined = math_rewards.rewards_from_config(entries)

  def fn(texts, records):
    if tokenizer is not None:
      lengths = np.asarray([len(tokenizer.encode(t)) for t in texts])
    else:
      lengths = np.asarray([len(t) for t in texts])
    total, _ = combined(texts, [str(r['answer']) for r in records], lengths)
    return total

  return fn


def make_reward_fn(cfg: Mapping[str, Any], tokenizer: Tokenizer | None = None
                   ) -> RewardFn:
  """Reward function from `config.reward` (see module docstring)."""
  cfg = dict(cfg)
  kind = cfg.pop('kind', 'synthetic')
  cfg.pop('correct_threshold', None)
  if kind == 'synthetic':
    return synthetic_reward_fn(cfg)
  if kind == 'math':
    return math_reward_fn(cfg, tokenizer)
  if kind == 'python':  # A user function 'package.module:name'.
    module, _, name = str(cfg['fn']).partition(':')
    return getattr(importlib.import_module(module), name)
  raise ValueError(f"reward.kind={kind!r}: expected 'synthetic', 'math' or "
                   "'python' (with fn='module:function')")
