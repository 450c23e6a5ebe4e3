"""Chunked cross-entropy from hidden states = the plain path = NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.losses.sft import (chunked_sft_loss, chunked_token_log_probs,
                                  sft_loss, token_log_probs)

B, T, D, V = 3, 12, 7, 11  # Distinct sizes: [B, T, V] is findable in HLO.


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  hidden = rng.normal(size=(B, T, D)).astype(np.float32)
  w = rng.normal(size=(D, V)).astype(np.float32)
  tokens = rng.integers(0, V, (B, T)).astype(np.int32)
  seg = np.array([[1] * 5 + [2] * 5 + [0] * 2, [1] * 12, [1] * 3 + [2] * 9],
                 np.int32)
  mask = (rng.random((B, T)) > 0.3).astype(np.int32)
  return hidden, w, tokens, seg, mask


def _numpy_loss(logits, tokens, seg, mask):
  """Mean -log softmax(logits)[next token] over counted positions, float64."""
  logits = logits.astype(np.float64)
  total, count = 0.0, 0
  for i in range(B):
    for j in range(T - 1):
      if seg[i, j] > 0 and seg[i, j + 1] == seg[i, j] and mask[i, j + 1]:
        z = logits[i, j] - logits[i, j].max()
        total -= z[tokens[i, j + 1]] - np.log(np.exp(z).sum())
        count += 1
  return total / count


@pytest.mark.parametrize('chunk', [1, 5, 12, 64])
def test_values_and_gradients_match_plain_and_numpy(chunk):
  hidden, w, tokens, seg, mask = _inputs()

  def chunked(h, w):
    return chunked_sft_loss(h, lambda x: x @ w, tokens, seg, mask, chunk)

  def plain(h, w):
    return sft_loss(h @ w, tokens, seg, mask)

  (loss, metrics), grads = jax.value_and_grad(chunked, (0, 1), has_aux=True)(
      hidden, w)
  (ref, ref_metrics), ref_grads = jax.value_and_grad(plain, (0, 1),
                                                     has_aux=True)(hidden, w)
  np.testing.assert_allclose(float(loss), _numpy_loss(hidden @ w, tokens, seg,
                                                      mask), rtol=1e-5)
  np.testing.assert_allclose(float(loss), float(ref), rtol=1e-6)
  for key in ('accuracy', 'num_tokens', 'loss_weight'):
    np.testing.assert_allclose(float(metrics[key]), float(ref_metrics[key]),
                               rtol=1e-6)
  assert 0 < float(metrics['accuracy']) < 1
  for g, r in zip(grads, ref_grads):
    assert np.abs(r).max() > 1e-3
    np.testing.assert_allclose(g, r, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('temperature', [1.0, 0.7, 'per_row'])
def test_token_log_probs_match_numpy(temperature):
  hidden, w, tokens, _, _ = _inputs(seed=1)
  if temperature == 'per_row':
    temperature = np.array([0.5, 1.0, 2.0], np.float32)
  logp = chunked_token_log_probs(jnp.asarray(hidden), lambda x: x @ w, tokens,
                                 chunk_size=5, temperature=temperature)
  z = (hidden @ w).astype(np.float64) / np.reshape(temperature, (-1, 1, 1))
  z = z - z.max(-1, keepdims=True)
  ref = z - np.log(np.exp(z).sum(-1, keepdims=True))
  ref = np.take_along_axis(ref, tokens[..., None], -1)[..., 0]
  np.testing.assert_allclose(logp, ref, atol=1e-5)
  np.testing.assert_allclose(
      logp, token_log_probs(hidden @ w, tokens, temperature), atol=1e-5)
  # Gradients through the log-probs (GRPO / DPO use them) match too.
  f = lambda h: chunked_token_log_probs(h, lambda x: x @ w, tokens, 5,
                                        temperature).sum()
  g = lambda h: token_log_probs(h @ w, tokens, temperature).sum()
  np.testing.assert_allclose(jax.grad(f)(hidden), jax.grad(g)(hidden),
                             atol=1e-5)


def test_full_logits_never_materialised():
  """No f32[B, T, V] array in the compiled loss-and-gradient; plain has one."""
  hidden, w, tokens, seg, mask = _inputs()
  shape = f'f32[{B},{T},{V}]'

  def hlo(loss_fn):
    grad = jax.jit(jax.grad(lambda h, w: loss_fn(h, w)[0], (0, 1)))
    return grad.lower(hidden, w).compile().as_text()

  plain = hlo(lambda h, w: sft_loss(h @ w, tokens, seg, mask))
  chunked = hlo(lambda h, w: chunked_sft_loss(h, lambda x: x @ w, tokens, seg,
                                              mask, chunk_size=4))
  assert shape in plain
  assert shape not in chunked
  assert f'f32[{B},4,{V}]' in chunked  # One chunk's logits at a time.
