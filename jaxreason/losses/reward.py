"""Losses of reward models: per-step (PRM), outcome (ORM) and ranking.

Every loss takes score *logits* (a scalar head's output, or the log-odds of
'+' against '-' from `two_token_logits`) and returns (loss, metrics).

  step_bce_loss      PRM: binary cross-entropy at each step's scoring
                     position (the last token of the step's separator);
                     hard (0/1) or soft (share of correct rollouts) labels;
                     option: ignore the steps after the first wrong one.
  outcome_loss       ORM: one label per response, 'bce' or 'mse' on the
                     sigmoid of the score.
  ranking_loss       Qwen2.5-Math RM: Bradley-Terry -log sigmoid(r+ - r-)
                     averaged over every correct x wrong pair of responses
                     to the same question (its group), then over groups.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def two_token_logits(logits: Array, plus_id: int, minus_id: int) -> Array:
  """log p(+) - log p(-) at each position: [B, T, V] -> [B, T].

  sigmoid of it is p(+) / (p(+) + p(-)), the PRM's step score with a
  token head (the softmax normaliser cancels).
  """
  logits = logits.astype(jnp.float32)
  return logits[..., plus_id] - logits[..., minus_id]


def _bce(logits: Array, labels: Array) -> Array:
  """Elementwise -[y log s(x) + (1-y) log(1-s(x))], stable for soft y."""
  return (jnp.maximum(logits, 0) - logits * labels +
          jnp.log1p(jnp.exp(-jnp.abs(logits))))


def first_wrong_mask(labels: Array, mask: Array) -> Array:
  """`mask` without the steps after each row's first wrong (label < 0.5) one.

  labels, mask: [B, T] (scored positions have mask > 0). The first wrong
  step itself is kept.
  """
  wrong = ((labels < 0.5) & (mask > 0)).astype(jnp.int32)
  before = jnp.cumsum(wrong, axis=-1) - wrong  # Wrong steps strictly before.
  return jnp.where(before > 0, 0.0, mask.astype(jnp.float32))


def step_bce_loss(logits: Array, labels: Array, mask: Array, *,
                  first_error_only: bool = False) -> tuple[Array, dict]:
  """Mean BCE over scored positions (TRL PRMTrainer's loss).

  logits: [B, T] score logits; labels: [B, T] in [0, 1] (hard or soft);
  mask: [B, T], 1 at each step's scoring position, 0 elsewhere (the
  prompt, the step's other tokens, padding). With `first_error_only` the
  steps after a row's first wrong step do not count.
  Metrics: accuracy (sign of the logit against label >= 0.5), num_steps,
  loss_weight (= num_steps, for gradient accumulation).
  """
  assert logits.shape == labels.shape == mask.shape, (
      f'logits {logits.shape}, labels {labels.shape}, mask {mask.shape}')
  logits = logits.astype(jnp.float32)
  labels = labels.astype(jnp.float32)
  w = (first_wrong_mask(labels, mask) if first_error_only else
       mask.astype(jnp.float32))
  n = w.sum()
  denom = jnp.maximum(n, 1.0)
  loss = (_bce(logits, labels) * w).sum() / denom
  correct = ((logits > 0) == (labels >= 0.5)).astype(jnp.float32)
  return loss, {'accuracy': jax.lax.stop_gradient(correct * w).sum() / denom,
                'num_steps': n, 'loss_weight': n}


def outcome_loss(scores: Array, labels: Array, kind: str = 'bce',
                 weights: Array | None = None) -> tuple[Array, dict]:
  """ORM loss: scores [B] (logits of the last token), labels [B] in [0, 1].

  kind 'bce': binary cross-entropy; 'mse': (sigmoid(score) - label)^2.
  weights [B] (default 1) masks padding rows.
  """
  scores = scores.astype(jnp.float32)
  labels = labels.astype(jnp.float32)
  w = jnp.ones_like(scores) if weights is None else weights.astype(
      jnp.float32)
  if kind == 'bce':
    per = _bce(scores, labels)
  elif kind == 'mse':
    per = jnp.square(jax.nn.sigmoid(scores) - labels)
  else:
    raise ValueError(f"kind={kind!r}: expected 'bce' or 'mse'")
  n = w.sum()
  denom = jnp.maximum(n, 1.0)
  correct = ((scores > 0) == (labels >= 0.5)).astype(jnp.float32)
  return (per * w).sum() / denom, {
      'accuracy': jax.lax.stop_gradient(correct * w).sum() / denom,
      'loss_weight': n}


def ranking_loss(scores: Array, correct: Array, group_ids: Array,
                 weights: Array | None = None) -> tuple[Array, dict]:
  """Qwen2.5-Math RM loss over groups of responses to one question.

  scores: [B] reward logits; correct: [B] bool (the response's final answer
  is right); group_ids: [B] int (same id = same question); weights [B]
  (0 drops a padding row). For a group with k correct and m wrong responses
  the loss is -1/(k m) sum_{i correct, j wrong} log sigmoid(s_i - s_j)
  (the paper's 1/(k(6-k)) for 6 responses); the batch loss is the mean over
  groups with at least one pair. Metrics: pair accuracy (s_i > s_j), the
  number of pairs and of groups with pairs.
  """
  scores = scores.astype(jnp.float32)
  w = jnp.ones_like(scores) if weights is None else weights.astype(
      jnp.float32)
  pos = correct.astype(bool) & (w > 0)
  neg = ~correct.astype(bool) & (w > 0)
  same = group_ids[:, None] == group_ids[None, :]  # [B, B]
  pair = (same & pos[:, None] & neg[None, :]).astype(jnp.float32)  # [i, j]
  margin = scores[:, None] - scores[None, :]
  nll = -jax.nn.log_sigmoid(margin)  # [B, B]
  # Per-group normaliser: the group's number of pairs, seen from row i.
  pairs_in_group = (pair.sum(1)[None, :] * same).sum(1)  # [B] per row i
  per_pair = pair / jnp.maximum(pairs_in_group, 1.0)[:, None]
  # Each group's pairs sum to 1 in per_pair, so the sum counts groups.
  num_groups = per_pair.sum()
  loss = (per_pair * nll).sum() / jnp.maximum(num_groups, 1.0)
  num_pairs = pair.sum()
  acc = ((margin > 0) * pair).sum() / jnp.maximum(num_pairs, 1.0)
  return loss, {'pair_accuracy': jax.lax.stop_gradient(acc),
                'num_pairs': num_pairs, 'num_groups': num_groups,
                'loss_weight': jnp.float32(1.0)}
