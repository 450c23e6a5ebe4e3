"""Stop strings across token boundaries, on device, against Python's `in`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.sampling import SamplingParams
from jaxreason.sampling import Sampler
from jaxreason.sampling import stopping

from sampling_testlib import BATCH, CONFIG, SAMPLER_KW, TOKENIZER
from sampling_testlib import prompts_of

# Multi-byte tokens: stop strings inside a token, across two or three tokens,
# and a UTF-8 character split over two byte-level tokens.
TOKENS = [b'', b'a', b'b', b'\n', b'\n\n', b'ab\n', b'x</', b'think>',
          b'</think>', b'`', b'``', b'```x', b'q\n\nr', b'\xe4\xb8', b'\xad',
          b'hello world', b'</', b'th', b'ink', b'>']
STOPS = ['\n\n', '</think>', '```', '\u4e2d']  # '中' = e4 b8 ad.


class _BytesTokenizer:
  vocab_size = len(TOKENS)

  def token_bytes(self, i):
    return TOKENS[i]


def _first_hit(seq):
  text = b''
  for i, t in enumerate(seq):
    text += TOKENS[t]
    if any(s.encode() in text for s in STOPS):
      return i
  return -1


@jax.jit
def _run(criteria, seqs):
  """Feeds seqs [B, T] token by token -> (hits [T, B], tails [T, B, W])."""
  def step(state, tokens):
    state, hit = stopping.update(criteria, state, tokens,
                                 jnp.ones(tokens.shape, bool))
    return state, (hit, state.tail, state.count)
  init = stopping.StopState.init(seqs.shape[0], criteria)
  return jax.lax.scan(step, init, seqs.T)[1]


def test_matches_python_reference():
  criteria = stopping.build_stop_criteria(
      len(TOKENS), stop_strings=STOPS, tokenizer=_BytesTokenizer())
  assert criteria.width == len('</think>')
  rng = np.random.default_rng(0)
  seqs = rng.integers(0, len(TOKENS), (256, 12))
  # Hand-written cases: a stop string in three tokens, then in two.
  seqs[0, :4] = [TOKENS.index(b'</'), TOKENS.index(b'th'),
                 TOKENS.index(b'ink'), TOKENS.index(b'>')]
  seqs[1, :3] = [TOKENS.index(b'a'), TOKENS.index(b'\xe4\xb8'),
                 TOKENS.index(b'\xad')]
  hits, tails, counts = (np.asarray(x) for x in _run(criteria, seqs))
  w = criteria.width
  for b, seq in enumerate(seqs):
    first = _first_hit(seq)
    got = np.flatnonzero(hits[:, b])
    assert (got[0] if len(got) else -1) == first, (b, seq, got)
    text = b''
    for i, t in enumerate(seq):
      text += TOKENS[t]
      tail = text[-w:]
      assert counts[i, b] == len(tail)
      assert bytes(tails[i, b, w - len(tail):]) == tail
  assert _first_hit(seqs[0]) == 3 and _first_hit(seqs[1]) == 2


def test_build_errors():
  with pytest.raises(ValueError, match='tokenizer'):
    stopping.build_stop_criteria(10, stop_strings=['x'])
  with pytest.raises(ValueError, match='empty'):
    stopping.build_stop_criteria(10, stop_strings=[''],
                                 tokenizer=_BytesTokenizer())
  with pytest.raises(ValueError, match='eos'):
    stopping.build_stop_criteria(10, eos_ids=[10])


def _spanning_stop(tokens, min_end=2):
  """A string over tokens j-1, j whose first occurrence ends in token j."""
  parts = [TOKENIZER.token_bytes(t) for t in tokens]
  for j in range(min_end, len(tokens)):
    s = parts[j - 1] + parts[j]
    if parts[j - 1] and parts[j] and s not in b''.join(parts[:j]):
      return s.decode()
  raise AssertionError(f'no spanning stop string in {tokens}')


def _expected(tokens, stops, eos_ids, max_new):
  """(tokens, finish reason) by Python: the first EOS or stop string wins."""
  text = b''
  for i, t in enumerate(tokens[:max_new]):
    text += TOKENIZER.token_bytes(t)
    if t in eos_ids:
      return tokens[:i + 1], 'eos'
    if any(s.encode() in text for s in stops):
      return tokens[:i + 1], 'stop'
  return tokens[:max_new], 'length'


def test_sampler_stops_on_strings_and_eos(params, sampler):
  """Stop strings chosen from the greedy output span two tokens."""
  prompts = prompts_of([5, 9, 3, 12], seed=5)
  greedy = SamplingParams.greedy(BATCH)
  rng = jax.random.key(0)
  _, free = sampler.decode(params, sampler.prefill(params, prompts), greedy,
                           rng, 16)
  free = free.token_lists()
  stops = (_spanning_stop(free[0], 4), _spanning_stop(free[1], 6))
  eos = next(t for j, t in enumerate(free[2]) if j >= 2
             and t not in free[2][:j])
  stopper = Sampler(CONFIG, tokenizer=TOKENIZER, stop_strings=stops,
                    eos_ids=(eos,), **SAMPLER_KW)
  state, out = stopper.decode(params, stopper.prefill(params, prompts),
                              greedy, rng, 16)
  expected = [_expected(t, stops, (eos,), 16) for t in free]
  assert out.token_lists() == [t for t, _ in expected]
  assert out.finish_reasons() == [r for _, r in expected]
  assert [r for _, r in expected][:3] == ['stop', 'stop', 'eos']
  # The stop text is in the returned tokens and in the cache.
  assert TOKENIZER.decode(out.token_lists()[0]).endswith(stops[0])
  np.testing.assert_array_equal(
      np.asarray(state.lengths),
      [len(p) + len(t) for p, t in zip(prompts, out.token_lists())])
