"""Masked next-token cross-entropy over packed sequences.

Two ways in: from logits [B, T, V] (`sft_loss`, `token_log_probs`), or from
the final hidden states [B, T, D] and the unembedding (`chunked_sft_loss`,
`chunked_token_log_probs`), which compute the float32 logits chunk_size
positions at a time (a rematerialized loop over sequence chunks), so the
[B, T, V] float32 logits never exist at once, in the forward or the backward
pass. Both give the same values and gradients (tests/losses/test_sft.py).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
# hidden [B, C, D] -> float32 logits [B, C, V] (e.g. `models.transformer.
# Unembed(cfg).apply({'params': p}, h)`), differentiable in what it closes over.
LogitsFn = Callable[[Array], Array]


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
  return _loss_and_metrics(target_logit, jax.nn.logsumexp(logits, axis=-1),
                           logits.max(-1), weights)


def _loss_and_metrics(target_logit: Array, lse: Array, max_logit: Array,
                      weights: Array) -> tuple[Array, dict]:
  """From per-position target logit, logsumexp and max logit, all [B, T]."""
  nll = lse - target_logit
  denom = jnp.maximum(weights.sum(), 1.0)
  loss = (nll * weights).sum() / denom
  # Greedy accuracy without argmax (slow on XLA:CPU); ties count as correct.
  correct = (target_logit >= max_logit).astype(jnp.float32)
  correct = jax.lax.stop_gradient(correct)
  return loss, {
      'accuracy': (correct * weights).sum() / denom,
      'num_tokens': weights.sum(),
      'loss_weight': weights.sum(),
  }


# Chunked over the sequence: from hidden states --------------------------------


def _chunked_logit_stats(hidden: Array, logits_fn: LogitsFn, targets: Array,
                         chunk_size: int,
                         temperature: float | Array = 1.0
                         ) -> tuple[Array, Array, Array]:
  """(target logit, logsumexp, max logit), each [B, T] float32.

  hidden [B, T, D] and targets [B, T] are cut into ceil(T / chunk_size)
  chunks along T (the last zero-padded); `lax.map` runs one chunk at a time
  under `jax.checkpoint`, so only one chunk's [B, C, V] logits are live, and
  the backward pass recomputes them chunk by chunk. Logits are divided by
  temperature (scalar or [B]).
  """
  b, t, d = hidden.shape
  assert targets.shape == (b, t), (targets.shape, hidden.shape)
  if chunk_size <= 0:
    raise ValueError(f'chunk_size={chunk_size} must be positive')
  c = min(chunk_size, t)
  n = -(-t // c)
  pad = n * c - t
  hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
  targets = jnp.pad(targets, ((0, 0), (0, pad)))
  hidden = hidden.reshape(b, n, c, d).swapaxes(0, 1)  # [N, B, C, D]
  targets = targets.reshape(b, n, c).swapaxes(0, 1)  # [N, B, C]
  temperature = jnp.asarray(temperature, jnp.float32)
  if temperature.ndim == 1:
    temperature = temperature[:, None, None]  # [B] -> [B, 1, 1]

  @jax.checkpoint
  def one_chunk(chunk):
    h, tgt = chunk
    logits = logits_fn(h).astype(jnp.float32) / temperature  # [B, C, V]
    target = jnp.take_along_axis(logits, tgt[..., None], -1)[..., 0]
    return target, jax.nn.logsumexp(logits, axis=-1), logits.max(-1)

  stats = jax.lax.map(one_chunk, (hidden, targets))  # 3 x [N, B, C]
  return tuple(x.swapaxes(0, 1).reshape(b, n * c)[:, :t] for x in stats)


def chunked_token_log_probs(hidden: Array, logits_fn: LogitsFn,
                            targets: Array, chunk_size: int,
                            temperature: float | Array = 1.0) -> Array:
  """`token_log_probs(logits_fn(hidden), targets, temperature)`, chunked.

  hidden: [B, T, D]; targets: [B, T] -> [B, T] float32; the [B, T, V]
  logits are computed chunk_size positions at a time, never all at once.
  """
  target, lse, _ = _chunked_logit_stats(hidden, logits_fn, targets,
                                        chunk_size, temperature)
  return target - lse


def chunked_sft_loss(hidden: Array, logits_fn: LogitsFn, tokens: Array,
                     segment_ids: Array, loss_mask: Array,
                     chunk_size: int) -> tuple[Array, dict]:
  """`sft_loss(logits_fn(hidden), ...)` without all the logits at once.

  hidden: [B, T, D] final hidden states (`Transformer(..., hidden_only=
  True)`); tokens, segment_ids, loss_mask: [B, T]. Same (loss, metrics).
  """
  targets, weights = next_token_targets(tokens, segment_ids, loss_mask)
  target, lse, max_logit = _chunked_logit_stats(hidden, logits_fn, targets,
                                                chunk_size)
  return _loss_and_metrics(target, lse, max_logit, weights)
