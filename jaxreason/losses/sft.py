"""Masked next-token cross-entropy over packed sequences."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def next_token_targets(tokens: Array, segment_ids: Array, loss_mask: Array
                       ) -> tuple[Array, Array]:
  """Targets and weights for predicting token t+1 at position t.

  tokens, segment_ids, loss_mask: [B, T]. A position counts only if the next
  token is in the same (non-padding) segment and is marked as a completion
  token. Returns (targets [B, T], weights [B, T] float32); the last position
  never counts.
  """
  targets = jnp.concatenate([tokens[:, 1:], jnp.zeros_like(tokens[:, :1])], 1)
  next_seg = jnp.concatenate(
      [segment_ids[:, 1:], jnp.zeros_like(segment_ids[:, :1])], 1)
  next_mask = jnp.concatenate(
      [loss_mask[:, 1:], jnp.zeros_like(loss_mask[:, :1])], 1)
  valid = (next_seg == segment_ids) & (segment_ids > 0) & (next_mask > 0)
  return targets, valid.astype(jnp.float32)


def token_log_probs(logits: Array, targets: Array,
                    temperature: float | Array = 1.0) -> Array:
  """log softmax(logits / temperature)[targets]: [B, T, V], [B, T] -> [B, T].

  temperature: a scalar or one per row, [B]. The one log-prob primitive:
  scoring, GRPO's and DPO's log-probs all come through here.
  """
  temperature = jnp.asarray(temperature, jnp.float32)
  if temperature.ndim == 1:
    temperature = temperature[:, None, None]  # [B] -> [B, 1, 1]
  logp = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=-1)
  return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


def next_token_log_probs(logits: Array, tokens: Array,
                         temperature: float | Array = 1.0) -> Array:
  """[B, T-1]: entry t is log p(tokens[:, t+1] | tokens[:, :t+1]).

  logits: [B, T, V] of the model run on tokens [B, T]; temperature as in
  `token_log_probs`.
  """
  return token_log_probs(logits[:, :-1], tokens[:, 1:], temperature)


def sft_loss(logits: Array, tokens: Array, segment_ids: Array,
             loss_mask: Array) -> tuple[Array, dict]:
  """Mean cross-entropy over completion tokens.

  logits: [B, T, V] float; tokens, segment_ids, loss_mask: [B, T] int.
  Returns (loss, metrics) with metrics `accuracy` (greedy next-token accuracy
  on counted tokens), `num_tokens` and `loss_weight` (= num_tokens, used by
  gradient accumulation).
  """
  targets, weights = next_token_targets(tokens, segment_ids, loss_mask)
  logits = logits.astype(jnp.float32)
  # Cross-entropy as logsumexp - target logit: no [B, T, V] log-softmax array
  # is materialised (measured faster than take_along_axis(log_softmax)).
  target_logit = jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
  nll = jax.nn.logsumexp(logits, axis=-1) - target_logit
  denom = jnp.maximum(weights.sum(), 1.0)
  loss = (nll * weights).sum() / denom
  # Greedy accuracy without argmax (slow on XLA:CPU); ties count as correct.
  correct = (target_logit >= logits.max(-1)).astype(jnp.float32)
  correct = jax.lax.stop_gradient(correct)
  return loss, {
      'accuracy': (correct * weights).sum() / denom,
      'num_tokens': weights.sum(),
      'loss_weight': weights.sum(),
  }
