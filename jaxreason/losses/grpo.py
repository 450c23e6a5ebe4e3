"""GRPO and its DAPO / Dr.GRPO variants (semantics of Hugging Face TRL).

  advantages = group_advantages(rewards, group_size, scale='group')   # [B]
  loss, metrics = grpo_loss(logps, old_logps, ref_logps, advantages, mask,
                            epsilon_low=0.2, epsilon_high=0.28, beta=0.0,
                            loss_type='dapo', max_completion_length=1024)

Per token t of completion i (TRL `GRPOTrainer._compute_loss`):
  ratio   = exp(logp - old_logp)                 (exactly 1 when mu = 1)
  clipped = clip(ratio, 1 - epsilon_low, 1 + epsilon_high)
  l_it    = -min(ratio * A_i, clipped * A_i) + beta * KL_it
  KL_it   = exp(ref - logp) - (ref - logp) - 1   (k3 estimator, >= 0)
Aggregation over the mask M:
  grpo     mean_i [ sum_t l_it M_it / max(sum_t M_it, 1) ]    (sample mean)
  bnpo     sum l M / max(sum M, 1)                            (token mean)
  dr_grpo  sum l M / (B * max_completion_length)              (constant)
  dapo     sum l M / num_items_in_batch  (tokens of the whole generation
           batch, over all micro-batches; = bnpo within one batch)
With gradient accumulation (TRL: each micro-batch's loss / the number of
micro-batches), grpo, bnpo and dr_grpo are computed per micro-batch (bnpo
divides by the micro-batch's own completion tokens) and averaged, so bnpo
under accumulation is not the token mean of the whole batch; dapo is (its
normaliser counts every micro-batch's tokens). recipes/grpo.py sets the
train step's `loss_weight` accordingly (1 per micro-batch; tokens for dapo).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

SCALES = ('group', 'batch', 'none')
LOSS_TYPES = ('grpo', 'bnpo', 'dr_grpo', 'dapo')


def group_advantages(rewards: Array, group_size: int, scale: str = 'group',
                     eps: float = 1e-4) -> Array:
  """rewards [B] (B = prompts * group_size, groups contiguous) -> [B].

  A = r - mean(group); divided by (std + eps) with std the unbiased standard
  deviation of the group ('group', GRPO), of the whole batch ('batch', as
  in Dr.GRPO's recommended Lite-PPO style), or not at all ('none', Dr.GRPO).
  """
  if scale not in SCALES:
    raise ValueError(f'scale_rewards={scale!r}: expected one of {SCALES}')
  b = rewards.shape[0]
  if b % group_size:
    raise ValueError(f'{b} rewards do not split into groups of {group_size}')
  r = rewards.astype(jnp.float32).reshape(b // group_size, group_size)
  adv = (r - r.mean(axis=1, keepdims=True)).reshape(b)
  if scale == 'group':
    std = jnp.repeat(jnp.std(r, axis=1, ddof=1), group_size)
  elif scale == 'batch':
    std = jnp.std(rewards.astype(jnp.float32), ddof=1)
  else:
    return adv
  return adv / (std + eps)


def k3_kl(logps: Array, ref_logps: Array) -> Array:
  """Per-token k3 estimate of KL(pi || ref): exp(d) - d - 1, d = ref - logp."""
  d = ref_logps - logps
  return jnp.exp(d) - d - 1.0


def grpo_loss(logps: Array, old_logps: Array | None, ref_logps: Array | None,
              advantages: Array, mask: Array, *, epsilon_low: float = 0.2,
              epsilon_high: float | None = None, beta: float = 0.0,
              loss_type: str = 'dapo', max_completion_length: int | None = None,
              num_items_in_batch: Array | float | None = None
              ) -> tuple[Array, dict[str, Array]]:
  """The clipped GRPO surrogate.

  Args:
    logps: [B, T] log-probs of the sampled tokens under the current policy
      (logits divided by the sampling temperature before the log-softmax).
    old_logps: [B, T] under the policy that sampled them; None means mu = 1
      (the ratio is exp(logp - stop_gradient(logp)) = 1 with the right
      gradient).
    ref_logps: [B, T] under the frozen reference; only used when beta > 0.
    advantages: [B].
    mask: [B, T] 1 on completion tokens that count.
    epsilon_low, epsilon_high: clip range [1 - low, 1 + high]; high defaults
      to low (DAPO's clip-higher uses e.g. 0.2 / 0.28).
    beta: weight of the k3 KL to the reference.
    loss_type: grpo | bnpo | dr_grpo | dapo (see module docstring).
    max_completion_length: the constant of dr_grpo.
    num_items_in_batch: dapo's normaliser; defaults to mask.sum().

  Returns:
    (loss, metrics): metrics hold kl, clip ratios (low, high, region) and the
    mean ratio, all masked token means.
  """
  if loss_type not in LOSS_TYPES:
    raise ValueError(f'loss_type={loss_type!r}: expected one of {LOSS_TYPES}')
  if logps.ndim != 2 or mask.shape != logps.shape:
    raise ValueError(f'logps {logps.shape} and mask {mask.shape} must be the '
                     'same [B, T]')
  if advantages.shape != logps.shape[:1]:
    raise ValueError(f'advantages {advantages.shape} must be [B]={logps.shape[:1]}')
  epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
  mask = mask.astype(jnp.float32)
  if old_logps is None:
    old_logps = jax.lax.stop_gradient(logps)
  ratio = jnp.exp(logps - old_logps)
  clipped = jnp.clip(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
  adv = advantages[:, None].astype(jnp.float32)
  per_token = -jnp.minimum(ratio * adv, clipped * adv)
  kl = None
  if beta != 0.0:
    if ref_logps is None:
      raise ValueError('beta > 0 needs ref_logps')
    kl = k3_kl(logps, ref_logps)
    per_token = per_token + beta * kl

  total = (per_token * mask).sum()
  if loss_type == 'grpo':
    loss = ((per_token * mask).sum(-1) / jnp.maximum(mask.sum(-1), 1.0)).mean()
  elif loss_type == 'bnpo':
    loss = total / jnp.maximum(mask.sum(), 1.0)
  elif loss_type == 'dr_grpo':
    if not max_completion_length:
      raise ValueError('loss_type=dr_grpo needs max_completion_length')
    loss = total / (logps.shape[0] * max_completion_length)
  else:  # dapo
    norm = mask.sum() if num_items_in_batch is None else num_items_in_batch
    loss = total / jnp.maximum(norm, 1.0)

  def masked_mean(x):
    return (x.astype(jnp.float32) * mask).sum() / jnp.maximum(mask.sum(), 1.0)

  low = (ratio < 1.0 - epsilon_low) & (adv < 0)
  high = (ratio > 1.0 + epsilon_high) & (adv > 0)
  metrics = {
      'clip_ratio/low_mean': masked_mean(low),
      'clip_ratio/high_mean': masked_mean(high),
      'clip_ratio/region_mean': masked_mean(low | high),
      'ratio_mean': masked_mean(ratio),
      'kl': masked_mean(kl) if kl is not None else jnp.zeros(()),
  }
  return loss, metrics
