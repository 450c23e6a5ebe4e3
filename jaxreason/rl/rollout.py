"""Rollouts for policy optimisation: sample G completions per prompt, reward
them, and lay them out as a fixed-shape training batch.

Sequences are left-aligned `prompt + completion` rows padded to a static
width, so the jitted GRPO step compiles once. Entry t of every [N, W-1] array
refers to the token at position t + 1 (what `token_logprobs` returns).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import jax
import numpy as np

from jaxreason.data.tokenizer import Tokenizer
from jaxreason.sampling import Sampler, SamplingParams

RewardFn = Callable[[Sequence[str], Sequence[Mapping[str, Any]]], np.ndarray]


@dataclasses.dataclass
class Rollouts:
  """G completions for each of P prompts (row p * G + j: sample j of p)."""

  records: list[Mapping[str, Any]]  # [P] the prompts' records.
  prompt_ids: list[list[int]]  # [P]
  completion_ids: list[list[int]]  # [P * G]
  logprobs: list[np.ndarray]  # [P * G] sampler log-probs (at temperature).
  finish_reasons: list[str]  # [P * G]
  texts: list[str]  # [P * G]
  rewards: np.ndarray  # [P * G] float32
  group_size: int

  def group_rewards(self) -> np.ndarray:
    return self.rewards.reshape(-1, self.group_size)

  def select_groups(self, keep: np.ndarray) -> 'Rollouts':
    """Keeps the prompts whose `keep` is True (with their G samples)."""
    g = self.group_size
    rows = [p * g + j for p in np.nonzero(keep)[0] for j in range(g)]
    return Rollouts(
        records=[self.records[p] for p in np.nonzero(keep)[0]],
        prompt_ids=[self.prompt_ids[p] for p in np.nonzero(keep)[0]],
        completion_ids=[self.completion_ids[r] for r in rows],
        logprobs=[self.logprobs[r] for r in rows],
        finish_reasons=[self.finish_reasons[r] for r in rows],
        texts=[self.texts[r] for r in rows], rewards=self.rewards[rows],
        group_size=g)

  @staticmethod
  def concat(parts: Sequence['Rollouts']) -> 'Rollouts':
    first = parts[0]
    cat = lambda name: [x for p in parts for x in getattr(p, name)]
    return Rollouts(
        records=cat('records'), prompt_ids=cat('prompt_ids'),
        completion_ids=cat('completion_ids'), logprobs=cat('logprobs'),
        finish_reasons=cat('finish_reasons'), texts=cat('texts'),
        rewards=np.concatenate([p.rewards for p in parts]),
        group_size=first.group_size)


def safe_rewards(reward_fn: RewardFn, texts: Sequence[str],
                 records: Sequence[Mapping[str, Any]]) -> np.ndarray:
  """Calls reward_fn per sample; a sample whose reward raises gets 0 (logged)."""
  out = np.zeros(len(texts), np.float32)
  for i, (t, r) in enumerate(zip(texts, records)):
    try:
      out[i] = float(reward_fn([t], [r])[0])
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('reward function raised on sample %d (%s: %s); '
                      'reward 0', i, type(e).__name__, e)
  return out


def sample_rollouts(params: Any, sampler: Sampler, tokenizer: Tokenizer,
                    records: Sequence[Mapping[str, Any]], reward_fn: RewardFn,
                    *, group_size: int, max_new_tokens: int,
                    temperature: float, top_p: float, rng: jax.Array
                    ) -> Rollouts:
  """G samples per record (one shared prefill per prompt), decoded, rewarded."""
  prompt_ids = [tokenizer.encode(r['prompt'],
                                 add_bos=tokenizer.bos_id is not None)
                for r in records]
  state = sampler.prefill(params, prompt_ids, num_samples=group_size)
  sp = SamplingParams.make(state.batch_size, temperature=temperature,
                           top_p=top_p)
  _, out = sampler.decode(params, state, sp, rng, max_new_tokens)
  completion_ids = out.token_lists()
  texts = [tokenizer.decode(c, skip_special_tokens=True)
           for c in completion_ids]
  expanded = [r for r in records for _ in range(group_size)]
  rewards = safe_rewards(reward_fn, texts, expanded)
  return Rollouts(records=list(records), prompt_ids=prompt_ids,
                  completion_ids=completion_ids, logprobs=out.logprob_lists(),
                  finish_reasons=out.finish_reasons(), texts=texts,
                  rewards=rewards, group_size=group_size)


def train_batch(r: Rollouts, advantages: np.ndarray, *, width: int,
                num_rows: int, mask_truncated: bool) -> dict[str, np.ndarray]:
  """Fixed-shape arrays for the GRPO step.

  Returns tokens [N, W] int32, mask / old_logps [N, W-1] float32 and
  advantages [N]; rows beyond the rollouts (N > len) are padding with an
  all-zero mask. Truncated completions (finish reason 'length') are masked
  out when `mask_truncated` (DAPO's overlong filtering).
  """
  tokens = np.zeros((num_rows, width), np.int32)
  mask = np.zeros((num_rows, width - 1), np.float32)
  old = np.zeros((num_rows, width - 1), np.float32)
  adv = np.zeros((num_rows,), np.float32)
  g = r.group_size
  for i, comp in enumerate(r.completion_ids):
    prompt = r.prompt_ids[i // g]
    seq = (list(prompt) + list(comp))[:width]
    tokens[i, :len(seq)] = seq
    start, end = len(prompt) - 1, len(seq) - 1  # Entries predicting comp.
    if end > start and not (mask_truncated and r.finish_reasons[i] == 'length'):
      mask[i, start:end] = 1.0
    old[i, start:end] = r.logprobs[i][:end - start]
    adv[i] = advantages[i]
  return {'tokens': tokens, 'mask': mask, 'old_logps': old,
          'advantages': adv}
