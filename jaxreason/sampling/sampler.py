"""KV-cache sampler: chunked prefill, a `lax.while_loop` decode, continuation.

  sampler = Sampler(config, cache_size=4096, tokenizer=tok,
                    stop_strings=('\\n\\n',), eos_ids=(tok.eos_id,))
  state = sampler.prefill(params, prompts, num_samples=8)  # One prefill each.
  sp = SamplingParams.make(state.batch_size, temperature=0.7, top_p=0.95)
  state, out = sampler.decode(params, state, sp, jax.random.key(0), 512)
  state = sampler.extend(params, state, [tok.encode('Wait')] * 8)
  state, more = sampler.decode(params, state, sp, jax.random.key(1), 256)

Two jitted functions do the work, each compiled once per shape:

* `append_tokens(params, state, tokens [B, C], num_new [B])`: writes a chunk
  of new tokens per row into the cache and keeps each row's next-token
  logits. Prefill is appending prompts to an empty state, chunk by chunk;
  `extend` is appending to a used one (nothing cached is re-encoded).
* `decode_loop(params, state, sampling, rng, max_new_tokens, criteria)`: one
  `lax.while_loop` that samples, checks stopping and appends, until every row
  is done or the static budget is spent. Sampling parameters and per-row
  max_new_tokens are arrays: changing them never recompiles. The budget (the
  output buffer's width) is max_new_tokens rounded up to a power of two.

Both donate the state (the cache is updated in place): keep a state for later
with `state.copy()`. Rows are selected or duplicated with `state.take(rows)`.

Row buckets: the row count is a static shape too. `prefill(..., pad_rows=True)`
(which `generate` uses) encodes the prompts in a batch of `bucket_rows(P)`
rows and returns `bucket_rows(P * num_samples)` rows, the extra ones empty
(length 0). An empty row is padding: `decode` never samples for it. So 3, 5
or 7 prompts share one compilation of each function.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.data.tokenizer import Tokenizer
from jaxreason.models.transformer import Transformer, TransformerConfig
from jaxreason.sampling import stopping
from jaxreason.sampling.attention import AttentionSpec, make_attention_fn
from jaxreason.sampling.cache import DecodeState
from jaxreason.sampling.sampling_params import (SamplingParams, row_keys,
                                                sample_tokens)
from jaxreason.sampling.stopping import StopCriteria, StopState

Array = jax.Array
Params = Any
# Python-side trace counts of the jitted functions, for compile-once tests.
TRACE_COUNTS: collections.Counter[str] = collections.Counter()
MIN_BUCKET = 16
MIN_ROWS = 8
ROW_MULTIPLE = 64


def bucket(n: int, minimum: int = MIN_BUCKET) -> int:
  """The power of two >= max(n, minimum): static sizes, few compilations."""
  return max(minimum, 1 << max(int(n) - 1, 0).bit_length())


def bucket_rows(n: int) -> int:
  """Padded row count: a power of two >= 8 up to 64, then a multiple of 64.

  At most twice the rows for small batches (cheap: decoding is bound by
  reading the weights), at most 63 extra rows (of KV cache) for large ones;
  multiples of 8 shard over a data axis of up to 8 devices.
  """
  if n <= ROW_MULTIPLE:
    return bucket(n, MIN_ROWS)
  return -(-int(n) // ROW_MULTIPLE) * ROW_MULTIPLE


@flax.struct.dataclass
class GenerationOutput:
  """What one decode call generated; row b's tokens are tokens[b, :lengths[b]].

  A row that stopped on a stop string keeps the matched text (its last
  tokens); one that stopped on EOS keeps the EOS token. Both are also in the
  returned state's cache.
  """

  tokens: Array  # [B, N] int32, 0 past each row's length (N: the budget).
  logprobs: Array  # [B, N] float32: log_softmax(logits / temperature)[token].
  lengths: Array  # [B] int32 generated tokens.
  finish_reason: Array  # [B] int32: stopping.EOS, STOP or LENGTH.

  def token_lists(self) -> list[list[int]]:
    tokens, lengths = np.asarray(self.tokens), np.asarray(self.lengths)
    return [tokens[b, :n].tolist() for b, n in enumerate(lengths)]

  def logprob_lists(self) -> list[np.ndarray]:
    logprobs, lengths = np.asarray(self.logprobs), np.asarray(self.lengths)
    return [logprobs[b, :n] for b, n in enumerate(lengths)]

  def finish_reasons(self) -> list[str]:
    return [stopping.FINISH_REASONS[int(r)]
            for r in np.asarray(self.finish_reason)]


@dataclasses.dataclass(frozen=True)
class Completion:
  """One sample of `Sampler.generate`."""

  tokens: list[int]
  logprobs: np.ndarray  # [len(tokens)] float32.
  finish_reason: str  # 'eos' | 'stop' | 'length'.
  text: str | None = None  # With a tokenizer.


# Jitted pieces ----------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=('config', 'attention'),
                   donate_argnames=('state',))
def append_tokens(params: Params, state: DecodeState, tokens: Array,
                  num_new: Array, *, config: TransformerConfig,
                  attention: AttentionSpec) -> DecodeState:
  """Appends tokens [B, C] (first num_new[b] real) to each row's cache."""
  TRACE_COUNTS['append_tokens'] += 1
  b, c = tokens.shape
  assert num_new.shape == (b,) and state.batch_size == b, (
      tokens.shape, num_new.shape, state.batch_size)
  logits, cache = Transformer(config).apply(
      {'params': params}, tokens, cache=state.cache, num_new=num_new,
      attention_fn=make_attention_fn(attention), last_only=True)  # [B, V]
  logits = jnp.where((num_new > 0)[:, None], logits, state.logits)
  return DecodeState(cache=cache, logits=logits)


@flax.struct.dataclass
class _Loop:
  """The while_loop carry."""

  step: Array  # [] int32
  state: DecodeState
  tokens: Array  # [B, N] int32
  logprobs: Array  # [B, N] float32
  num: Array  # [B] int32 generated so far.
  reason: Array  # [B] int32, stopping.RUNNING until the row finishes.
  stop: StopState


@functools.partial(jax.jit,
                   static_argnames=('config', 'attention', 'budget'),
                   donate_argnames=('state',))
def decode_loop(params: Params, state: DecodeState, sampling: SamplingParams,
                rng: Array, max_new_tokens: Array, criteria: StopCriteria, *,
                config: TransformerConfig, attention: AttentionSpec,
                budget: int) -> tuple[DecodeState, GenerationOutput]:
  """Samples up to max_new_tokens [B] (<= budget) tokens per row.

  Each step samples row b's next token from state.logits with the key
  fold_in(fold_in(rng, b), position), records it, checks EOS / stop strings /
  the budget / a full cache, and appends it to the cache (computing the
  logits after it). Finished rows stop appending; the loop ends when all rows
  are finished. Empty rows (length 0: padding) and rows with
  max_new_tokens <= 0 or a full cache start finished ('length', no tokens).
  """
  TRACE_COUNTS['decode_loop'] += 1
  b = state.batch_size
  size = state.cache.size
  assert max_new_tokens.shape == (b,), (max_new_tokens.shape, b)
  model = Transformer(config)
  attention_fn = make_attention_fn(attention)

  def cond(c: _Loop) -> Array:
    return (c.step < budget) & jnp.any(c.reason == stopping.RUNNING)

  def body(c: _Loop) -> _Loop:
    active = c.reason == stopping.RUNNING  # [B]
    position = c.state.lengths  # [B] where the new token goes.
    token, logprob = sample_tokens(c.state.logits, row_keys(rng, position),
                                   sampling)
    token = jnp.where(active, token, 0)
    logprob = jnp.where(active, logprob, 0.0)
    num = c.num + active
    stop, hit = stopping.update(criteria, c.stop, token, active)
    eos = active & stopping.is_eos(criteria, token)
    length = active & ((num >= max_new_tokens) | (position + 1 >= size))
    reason = jnp.select([eos, hit, length],
                        [stopping.EOS, stopping.STOP, stopping.LENGTH],
                        c.reason).astype(jnp.int32)
    logits, cache = model.apply(
        {'params': params}, token[:, None], cache=c.state.cache,
        num_new=active.astype(jnp.int32), attention_fn=attention_fn,
        last_only=True)  # [B, V]
    logits = jnp.where(active[:, None], logits, c.state.logits)
    return _Loop(
        step=c.step + 1, state=DecodeState(cache=cache, logits=logits),
        tokens=c.tokens.at[:, c.step].set(token),
        logprobs=c.logprobs.at[:, c.step].set(logprob),
        num=num, reason=reason, stop=stop)

  done = ((state.lengths >= size) | (state.lengths == 0)
          | (max_new_tokens <= 0))
  init = _Loop(
      step=jnp.zeros((), jnp.int32), state=state,
      tokens=jnp.zeros((b, budget), jnp.int32),
      logprobs=jnp.zeros((b, budget), jnp.float32),
      num=jnp.zeros((b,), jnp.int32),
      reason=jnp.where(done, stopping.LENGTH, stopping.RUNNING).astype(
          jnp.int32),
      stop=StopState.init(b, criteria))
  final = jax.lax.while_loop(cond, body, init)
  return final.state, GenerationOutput(
      tokens=final.tokens, logprobs=final.logprobs, lengths=final.num,
      finish_reason=final.reason)


# The host-side API ------------------------------------------------------------


class Sampler:
  """Prefill, decode and continue batches of token prompts with a KV cache.

  Args:
    config: the model.
    cache_size: positions per row (prompt + everything generated); rounded
      up to a multiple of block_size (see `self.cache_size`).
    tokenizer: needed for stop strings (`token_bytes`) and for text in
      `generate`.
    stop_strings: a row stops once its generated text contains one of them.
    eos_ids: a row stops after generating one of them. None: the tokenizer's
      eos id and config.eos_token_id (those set).
    prefill_chunk: the longest chunk of tokens appended in one call.
    block_size: keys per attention block.
    attention_impl: 'jnp', or 'pallas' for jaxreason.sampling.kernels
      (decode steps only; prefill stays jnp).
    interpret: run the Pallas kernel in interpret mode (CPU).
  """

  def __init__(self, config: TransformerConfig, *, cache_size: int,
               tokenizer: Tokenizer | None = None,
               stop_strings: Sequence[str] = (),
               eos_ids: Sequence[int] | None = None, prefill_chunk: int = 512,
               block_size: int = 256, attention_impl: str = 'jnp',
               interpret: bool = False):
    if cache_size <= 0 or prefill_chunk <= 0:
      raise ValueError(f'cache_size={cache_size} and prefill_chunk='
                       f'{prefill_chunk} must be positive')
    self.config = config
    self.tokenizer = tokenizer
    block_size = min(block_size, cache_size)
    self.cache_size = -(-cache_size // block_size) * block_size
    self.prefill_chunk = prefill_chunk
    self.attention = AttentionSpec(attention_impl, block_size, interpret)
    make_attention_fn(self.attention)  # Fails now if the kernel is missing.
    if eos_ids is None:
      eos_ids = sorted({i for i in (getattr(tokenizer, 'eos_id', None),
                                    config.eos_token_id) if i is not None})
    self.eos_ids = tuple(eos_ids)
    self.stop_strings = tuple(stop_strings)
    self.criteria = stopping.build_stop_criteria(
        config.vocab_size, eos_ids=self.eos_ids,
        stop_strings=self.stop_strings, tokenizer=tokenizer)

  # Prefill and continuation.

  def prefill(self, params: Params, prompts: Sequence[Sequence[int]],
              num_samples: int = 1, *, pad_rows: bool = False) -> DecodeState:
    """Encodes prompts once; row p * num_samples + j is sample j of prompt p.

    With `pad_rows`, the prompts are encoded in `bucket_rows(len(prompts))`
    rows and the state has `bucket_rows(len(prompts) * num_samples)` rows;
    the rows after the real ones are empty (length 0), and `decode` leaves
    them alone. Batches of different sizes then reuse the compiled prefill
    chunk and decode loop.
    """
    for i, p in enumerate(prompts):
      if not 1 <= len(p) <= self.cache_size:
        raise ValueError(f'prompt {i} has {len(p)} tokens; prompts need 1 to '
                         f'cache_size={self.cache_size} tokens')
    if num_samples < 1:
      raise ValueError(f'num_samples={num_samples} must be >= 1')
    n = len(prompts)
    rows = bucket_rows(n) if pad_rows else n
    state = DecodeState.init(self.config, rows, self.cache_size)
    state = self._append(params, state, list(prompts) + [[]] * (rows - n))
    real = n * num_samples
    total = bucket_rows(real) if pad_rows else real
    if num_samples == 1 and total == rows:
      return state  # Rows n.. (if any) are already empty.
    index = np.concatenate([np.repeat(np.arange(n), num_samples),
                            np.zeros(total - real, np.int64)])
    state = state.take(index)
    if total > real:  # Empty the padding rows (copies of row 0).
      empty = jnp.arange(total) >= real
      state = state.replace(cache=state.cache.replace(
          lengths=jnp.where(empty, 0, state.cache.lengths)))
    return state

  def extend(self, params: Params, state: DecodeState,
             appended: Sequence[Sequence[int]]) -> DecodeState:
    """Appends tokens to each row (may be empty) without re-encoding the cache.

    For a tool's output, a hint ("Wait"), a verifier's question: the result
    can be decoded from, and its `logits` are the next-token distribution
    (e.g. a verifier's "yes" / "no" probabilities). Consumes `state`.
    """
    if len(appended) != state.batch_size:
      raise ValueError(f'{len(appended)} sequences for {state.batch_size} rows')
    lengths = np.asarray(state.lengths)
    for i, (n, a) in enumerate(zip(lengths, appended)):
      if n + len(a) > self.cache_size:
        raise ValueError(f'row {i}: {n} cached + {len(a)} appended tokens '
                         f'exceed cache_size={self.cache_size}')
    return self._append(params, state, appended)

  def _append(self, params: Params, state: DecodeState,
              seqs: Sequence[Sequence[int]]) -> DecodeState:
    v = self.config.vocab_size
    for i, s in enumerate(seqs):
      if len(s) and not (0 <= min(s) and max(s) < v):
        raise ValueError(f'sequence {i} has ids outside [0, {v})')
    longest = max((len(s) for s in seqs), default=0)
    if longest == 0:
      return state
    chunk = min(self.prefill_chunk, bucket(longest))
    num_chunks = -(-longest // chunk)
    buf = np.zeros((len(seqs), num_chunks * chunk), np.int32)
    for i, s in enumerate(seqs):
      buf[i, :len(s)] = s
    lengths = np.asarray([len(s) for s in seqs])
    for c in range(num_chunks):
      num_new = np.clip(lengths - c * chunk, 0, chunk).astype(np.int32)
      state = append_tokens(params, state, buf[:, c * chunk:(c + 1) * chunk],
                            num_new, config=self.config,
                            attention=self.attention)
    return state

  # Decoding.

  def decode(self, params: Params, state: DecodeState,
             sampling: SamplingParams, rng: Array,
             max_new_tokens: int | Sequence[int]
             ) -> tuple[DecodeState, GenerationOutput]:
    """Samples up to max_new_tokens (scalar or per row) tokens per row.

    Consumes `state` (donated). Every non-empty row with max_new_tokens > 0
    samples, including rows that ended (EOS, stop string) in an earlier call:
    pass 0 for rows that should stay put. A row that fills the cache stops
    with finish reason 'length'; so do empty (padding) rows, at once. Nothing
    is copied to the host until the outputs are read.
    """
    b = state.batch_size
    max_new = np.broadcast_to(np.asarray(max_new_tokens, np.int32), (b,))
    if sampling.temperature.shape != (b,):
      raise ValueError(f'sampling parameters for '
                       f'{sampling.temperature.shape} rows, state has {b}')
    budget = min(bucket(int(max_new.max())),
                 bucket(self.cache_size))
    return decode_loop(params, state, sampling, rng, jnp.asarray(max_new),
                       self.criteria, config=self.config,
                       attention=self.attention, budget=budget)

  def generate(self, params: Params, prompts: Sequence[Sequence[int]], *,
               max_new_tokens: int, n: int = 1, rng: Array | int = 0,
               temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
               min_p: float = 0.0) -> list[list[Completion]]:
    """n completions of each prompt (one prefill per prompt).

    Rows are padded to `bucket_rows` (see `prefill`), so calls with different
    numbers of prompts reuse the compiled functions. `Completion.text` is
    `completion_text` of the tokens (a final EOS is not written out).
    """
    state = self.prefill(params, prompts, num_samples=n, pad_rows=True)
    sampling = SamplingParams.make(state.batch_size, temperature=temperature,
                                   top_p=top_p, top_k=top_k, min_p=min_p)
    if isinstance(rng, int):
      rng = jax.random.key(rng)
    _, out = self.decode(params, state, sampling, rng, max_new_tokens)
    real = len(prompts) * n
    tokens, logprobs = out.token_lists()[:real], out.logprob_lists()[:real]
    reasons = out.finish_reasons()[:real]
    samples = [Completion(t, lp, r, self.completion_text(t, r)
                          if self.tokenizer else None)
               for t, lp, r in zip(tokens, logprobs, reasons)]
    return [samples[i * n:(i + 1) * n] for i in range(len(prompts))]

  def completion_text(self, tokens: Sequence[int], finish_reason: str) -> str:
    """The text of generated tokens, without the final EOS of an 'eos' row.

    A matched stop string is kept, with whatever its last token adds after it
    (cut at `text.rfind(stop)` to drop both). Other special tokens are
    written out.
    """
    tokens = list(tokens)
    if finish_reason == 'eos' and tokens and tokens[-1] in self.eos_ids:
      tokens = tokens[:-1]
    return self.tokenizer.decode(tokens)
