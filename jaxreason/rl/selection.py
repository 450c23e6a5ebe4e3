"""Which training problems to keep: LIMR scores and pass-rate filters.

  # LIMR (Li et al. 2025, "LIMR: Less is More for RL Scaling"): from the
  # per-epoch rewards of a GRPO run (workdir/limr_rewards.jsonl).
  rewards, epochs = limr_reward_matrix(entries)  # [N, K], NaN = not seen.
  keep = limr_scores(rewards) > 0.6

  # Difficulty by a model's pass rate (Light-R1's curriculum filter).
  kept, rates = filter_by_pass_rate(params, model_cfg, tokenizer, records,
                                    reward_fn, n=8, lo=0.0, hi=0.75,
                                    max_new_tokens=256)

`sample_and_reward` (n verified samples per record) is the piece both the
pass-rate filter and the DPO recipe's pair builder use.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping, Sequence

from absl import logging
import jax
import numpy as np

from jaxreason.data.tokenizer import Tokenizer
from jaxreason.models.transformer import TransformerConfig
from jaxreason.sampling import Sampler
from jaxreason.rl.rollout import safe_rewards

RewardFn = Callable[[Sequence[str], Sequence[Mapping[str, Any]]], np.ndarray]


# LIMR ------------------------------------------------------------------------


def limr_scores(rewards: np.ndarray) -> np.ndarray:
  """LIMR learning-impact scores: rewards [N, K] (sample i, epoch k) -> [N].

  s_i = 1 - sum_k (r_i^k - rbar^k)^2 / sum_k (1 - rbar^k)^2, where rbar^k is
  the mean reward of all samples in epoch k. A sample whose reward curve
  follows the average curve scores 1; one that is always solved (r = 1)
  scores 0; one that stays at 0 while the average rises scores below 0.

  Missing entries are NaN (a sample GRPO did not draw in some epoch): rbar^k
  averages the samples present in epoch k, and both sums of s_i run over the
  epochs where sample i is present, so a sample is compared with the average
  curve on the same epochs. A sample present in no epoch, or whose present
  epochs all have rbar^k = 1 (the 0 / 0 case), scores NaN, which no
  threshold selects.
  """
  r = np.asarray(rewards, np.float64)
  if r.ndim != 2:
    raise ValueError(f'rewards must be [N samples, K epochs], got {r.shape}')
  present = ~np.isnan(r)  # [N, K]
  with np.errstate(invalid='ignore'):
    counts = present.sum(0)  # [K]
    mean = np.where(counts > 0, np.nansum(r, 0) / np.maximum(counts, 1),
                    np.nan)  # [K] rbar^k
  num = np.where(present, (np.nan_to_num(r) - mean) ** 2, 0.0).sum(1)  # [N]
  den = np.where(present, (1.0 - mean) ** 2, 0.0).sum(1)  # [N]
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(den > 0, 1.0 - num / np.where(den > 0, den, 1.0), np.nan)


def limr_reward_matrix(entries: Iterable[Mapping[str, Any]],
                       num_samples: int | None = None
                       ) -> tuple[np.ndarray, list[int]]:
  """Rewards [N, K] from GRPO's `limr_rewards.jsonl` rows; also the epochs.

  Each row has 'index' (the training record) and 'epoch'; the rewards of
  repeated (index, epoch) rows are averaged. Columns are the epochs that
  occur, in order; N = num_samples, or the largest index + 1. Entries never
  logged are NaN.
  """
  sums: dict[tuple[int, int], float] = {}
  counts: dict[tuple[int, int], int] = {}
  for row in entries:
    key = (int(row['index']), int(row['epoch']))
    sums[key] = sums.get(key, 0.0) + float(row['reward'])
    counts[key] = counts.get(key, 0) + 1
  epochs = sorted({e for _, e in sums})
  largest = max((i for i, _ in sums), default=-1) + 1
  n = largest if num_samples is None else int(num_samples)
  if n < largest:
    raise ValueError(f'num_samples={n} but the log has index {largest - 1}')
  column = {e: k for k, e in enumerate(epochs)}
  out = np.full((n, len(epochs)), np.nan)
  for (i, e), s in sums.items():
    out[i, column[e]] = s / counts[(i, e)]
  return out, epochs


# Sampling-based filters -------------------------------------------------------


@dataclasses.dataclass
class ScoredSamples:
  """n samples of each of N records with their rewards."""

  completion_ids: list[list[list[int]]]  # [N][n] generated ids (EOS kept).
  texts: list[list[str]]  # [N][n] decoded, special tokens skipped.
  finish_reasons: list[list[str]]  # [N][n] 'eos' | 'stop' | 'length'.
  rewards: np.ndarray  # [N, n] float32.


def sample_and_reward(params: Any, model_cfg: TransformerConfig,
                      tokenizer: Tokenizer,
                      records: Sequence[Mapping[str, Any]],
                      reward_fn: RewardFn, *, n: int, max_new_tokens: int,
                      temperature: float = 1.0, top_p: float = 1.0,
                      seed: int = 0, batch_prompts: int = 16,
                      stop_strings: Sequence[str] = ()) -> ScoredSamples:
  """n samples per record's 'prompt' (one prefill each), rewarded.

  A reward function that raises on a sample gives it 0 (logged), as in GRPO.
  """
  if n < 1 or batch_prompts < 1:
    raise ValueError(f'n={n} and batch_prompts={batch_prompts} must be >= 1')
  if not records:
    return ScoredSamples([], [], [], np.zeros((0, n), np.float32))
  add_bos = tokenizer.bos_id is not None
  prompts = [tokenizer.encode(r['prompt'], add_bos=add_bos) for r in records]
  sampler = Sampler(model_cfg,
                    cache_size=max(len(p) for p in prompts) + max_new_tokens,
                    tokenizer=tokenizer, stop_strings=tuple(stop_strings))
  rng = jax.random.key(seed)
  ids, texts, reasons = [], [], []
  for start in range(0, len(records), batch_prompts):
    outs = sampler.generate(
        params, prompts[start:start + batch_prompts],
        max_new_tokens=max_new_tokens, n=n,
        rng=jax.random.fold_in(rng, start), temperature=temperature,
        top_p=top_p)
    for samples in outs:
      ids.append([list(s.tokens) for s in samples])
      texts.append([tokenizer.decode(s.tokens, skip_special_tokens=True)
                    for s in samples])
      reasons.append([s.finish_reason for s in samples])
    logging.info('sampled %d x %d / %d records', min(start + batch_prompts,
                                                     len(records)), n,
                 len(records))
  flat_texts = [t for ts in texts for t in ts]
  flat_recs = [r for r in records for _ in range(n)]
  rewards = safe_rewards(reward_fn, flat_texts, flat_recs).reshape(-1, n)
  return ScoredSamples(ids, texts, reasons, rewards)


def filter_by_pass_rate(params: Any, model_cfg: TransformerConfig,
                        tokenizer: Tokenizer,
                        records: Sequence[Mapping[str, Any]],
                        reward_fn: RewardFn, n: int, lo: float, hi: float, *,
                        max_new_tokens: int, temperature: float = 1.0,
                        top_p: float = 1.0, seed: int = 0,
                        batch_prompts: int = 16,
                        correct_threshold: float = 1.0,
                        stop_strings: Sequence[str] = ()
                        ) -> tuple[list[Mapping[str, Any]], np.ndarray]:
  """Keeps the records whose pass rate under the model is in [lo, hi].

  The pass rate of a record is the share of its n samples whose reward is
  >= correct_threshold. Light-R1 keeps the problems a model does not solve
  reliably (hi < 1); lo > 0 also drops those it never solves (too hard for
  the model, or wrongly labelled). Returns (kept records in their order,
  pass rates [N] of all records).
  """
  if not 0.0 <= lo <= hi <= 1.0:
    raise ValueError(f'need 0 <= lo <= hi <= 1, got lo={lo}, hi={hi}')
  scored = sample_and_reward(
      params, model_cfg, tokenizer, records, reward_fn, n=n,
      max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
      seed=seed, batch_prompts=batch_prompts, stop_strings=stop_strings)
  rates = (scored.rewards >= correct_threshold).mean(1)  # [N]
  kept = [r for r, p in zip(records, rates) if lo <= p <= hi]
  logging.info('pass-rate filter [%g, %g] with n=%d: kept %d of %d records '
               '(mean pass rate %.3f)', lo, hi, n, len(kept), len(records),
               float(rates.mean()) if len(rates) else float('nan'))
  return kept, rates
