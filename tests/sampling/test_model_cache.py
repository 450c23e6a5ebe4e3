"""Cached decoding gives the logits of a full forward pass (float32, 1e-5).

Covers prompts of different lengths in one batch, chunked prefill (chunks of
8, prompts up to 29 tokens, attention blocks of 16), decode steps, and a
continuation appended to a decoded state.
"""

import functools

import jax
import numpy as np

from jaxreason.models.transformer import Transformer
from jaxreason.sampling import DecodeState
from jaxreason.sampling import SamplingParams
from jaxreason.sampling.attention import AttentionSpec
from jaxreason.sampling.attention import make_attention_fn

from sampling_testlib import BATCH, CONFIG, full_logits, prompts_of

TOL = dict(atol=1e-5, rtol=1e-5)
LENGTHS = [29, 3, 17, 8]


@functools.partial(jax.jit, donate_argnums=(1,))
def _chunk_all_logits(params, state, tokens, num_new):
  """Appends a chunk and returns every position's logits [B, T, V]."""
  logits, cache = Transformer(CONFIG).apply(
      {'params': params}, tokens, cache=state.cache, num_new=num_new,
      attention_fn=make_attention_fn(AttentionSpec(block_size=16)))
  return logits, DecodeState(cache=cache, logits=state.logits)


def test_chunked_prefill_all_positions(params):
  prompts = prompts_of(LENGTHS, seed=1)
  state = DecodeState.init(CONFIG, BATCH, 64)
  chunk = 8
  buf = np.zeros((BATCH, 32), np.int32)
  for b, p in enumerate(prompts):
    buf[b, :len(p)] = p
  pieces = []
  for c in range(4):
    num_new = np.clip(np.array(LENGTHS) - c * chunk, 0, chunk).astype(np.int32)
    logits, state = _chunk_all_logits(
        params, state, buf[:, c * chunk:(c + 1) * chunk], num_new)
    pieces.append(np.asarray(logits))
  cached = np.concatenate(pieces, axis=1)  # [B, 32, V]
  np.testing.assert_array_equal(np.asarray(state.lengths), LENGTHS)
  for b, p in enumerate(prompts):
    np.testing.assert_allclose(cached[b, :len(p)], full_logits(params, p),
                               **TOL)


def test_prefill_decode_extend_decode(params, sampler):
  prompts = prompts_of(LENGTHS, seed=2)
  state = sampler.prefill(params, prompts)
  np.testing.assert_allclose(
      np.asarray(state.logits),
      np.stack([full_logits(params, p)[-1] for p in prompts]), **TOL)

  def check_decoded(prefixes, state, out):
    """Each step's log-prob (greedy: temperature 1) and the final logits."""
    seqs = []
    for b, (prefix, gen) in enumerate(zip(prefixes, out.token_lists())):
      seq = prefix + gen
      ref = jax.nn.log_softmax(full_logits(params, seq), -1)
      steps = np.arange(len(prefix) - 1, len(seq) - 1)
      np.testing.assert_allclose(out.logprob_lists()[b],
                                 ref[steps, gen], **TOL)
      np.testing.assert_allclose(np.asarray(state.logits[b]),
                                 full_logits(params, seq)[-1], **TOL)
      # Greedy: each token is the full forward's argmax.
      np.testing.assert_array_equal(gen, np.argmax(ref[steps], -1))
      seqs.append(seq)
    np.testing.assert_array_equal(np.asarray(state.lengths),
                                  [len(s) for s in seqs])
    return seqs

  greedy = SamplingParams.greedy(BATCH)
  state, out = sampler.decode(params, state, greedy, jax.random.key(0),
                              [12, 5, 16, 1])
  assert out.token_lists() and [len(t) for t in out.token_lists()] == [
      12, 5, 16, 1]
  seqs = check_decoded(prompts, state, out)
  # Continuation: a hint of different lengths per row, then more decoding.
  hints = [[5, 6, 7], [], [9] * 11, [4]]
  state = sampler.extend(params, state, hints)
  seqs = [s + h for s, h in zip(seqs, hints)]
  np.testing.assert_allclose(
      np.asarray(state.logits),
      np.stack([full_logits(params, s)[-1] for s in seqs]), **TOL)
  state, out = sampler.decode(params, state, greedy, jax.random.key(1), 6)
  check_decoded(seqs, state, out)
