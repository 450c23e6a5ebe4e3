"""Step-wise generation for search: a pool of rows, each a growing solution.

Search methods drive a `Generator`: they start one row per problem (the
prompt, encoded once), `select` rows to keep, drop or duplicate (beam
expansion, N samples of one prompt), and `generate` the next piece of every
row: one step (up to a blank line) or the rest of the solution. The texts
live on the host in the method; the generator only appends.

`LMGenerator` does this with the KV-cached `Sampler`: `select` is
`DecodeState.take` (a gather of cache rows, nothing re-encoded) and each
`generate` continues every row from its cache with one jitted decode loop.
Tests drive the methods with scripted generators of the same interface.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.data.synthetic import extract_boxed
from jaxreason.data.tokenizer import Tokenizer
from jaxreason.models.transformer import TransformerConfig
from jaxreason.sampling.cache import DecodeState
from jaxreason.sampling.sampler import MIN_ROWS, Sampler, bucket
from jaxreason.sampling.sampling_params import SamplingParams
from jaxreason.search.budget import forward_flops

STEP_END = '\n\n'  # Steps are separated by blank lines.


@dataclasses.dataclass(frozen=True)
class Piece:
  """What one `generate` call appended to one row."""

  text: str
  num_tokens: int
  finish: str  # 'stop' (end of a step), 'eos', 'length' (no budget left).
  flops: float = 0.0  # Policy FLOPs of generating it.


class Generator(Protocol):
  """A pool of partial solutions that grow by appending."""

  def start(self, prompts: Sequence[str]) -> list[tuple[int, float]]:
    """Resets the pool to one row per prompt; (prompt tokens, FLOPs) each."""
    ...

  def select(self, rows: Sequence[int]) -> None:
    """The new pool's row i is the old row rows[i] (repeats fork it)."""
    ...

  def generate(self, until: str, temperature: float,
               active: Sequence[bool] | None = None) -> list[Piece]:
    """Appends one step (`until='step'`) or the rest ('end') to active rows.

    Inactive rows get an empty 'length' piece and stay as they are.
    """
    ...

  def save(self) -> Any:
    """A snapshot of the pool, for a lookahead that `restore` undoes."""
    ...

  def restore(self, saved: Any) -> None:
    ...


class LMGenerator:
  """A `Generator` on a KV-cached policy (`jaxreason.sampling.Sampler`).

  Args:
    config, params, tokenizer: the policy (e.g. from `load_policy`).
    cache_size: positions per row: the longest prompt plus
      `max_new_tokens` (plus lookahead steps, which may run past it).
    max_new_tokens: tokens a row may generate in all; a row that has spent
      them gets 'length' pieces.
    max_step_tokens: the longest step.
    top_p: nucleus sampling for temperature > 0.
    seed: sampling keys are fold_in(key(seed), call number).
  """

  def __init__(self, config: TransformerConfig, params: Any,
               tokenizer: Tokenizer, *, cache_size: int,
               max_new_tokens: int, max_step_tokens: int = 32,
               top_p: float = 1.0, seed: int = 0):
    self.config, self.params, self.tokenizer = config, params, tokenizer
    self.max_new_tokens, self.max_step_tokens = max_new_tokens, max_step_tokens
    self.top_p = top_p
    self._sampler = Sampler(config, cache_size=cache_size,
                            tokenizer=tokenizer, stop_strings=(STEP_END,))
    self._key = jax.random.key(seed)
    self._calls = 0
    self._state: DecodeState | None = None
    self._used = np.zeros((0,), np.int64)  # [rows] tokens generated.

  @property
  def num_rows(self) -> int:
    return len(self._used)

  def start(self, prompts: Sequence[str]) -> list[tuple[int, float]]:
    bos = self.tokenizer.bos_id is not None
    tokens = [self.tokenizer.encode(p, add_bos=bos) for p in prompts]
    self._state = self._sampler.prefill(self.params, tokens, pad_rows=True)
    self._used = np.zeros((len(tokens),), np.int64)
    return [(len(t), forward_flops(self.config, len(t), len(t) / 2))
            for t in tokens]

  def select(self, rows: Sequence[int]) -> None:
    rows = np.asarray(rows, np.int64)
    n = len(rows)
    total = bucket(n, MIN_ROWS)  # Powers of two: few decode compilations.
    index = np.concatenate([rows, np.zeros(total - n, np.int64)])
    state = self._state.take(index)
    if total > n:  # Padding rows are empty: decode leaves them alone.
      empty = jnp.arange(total) >= n
      state = state.replace(cache=state.cache.replace(
          lengths=jnp.where(empty, 0, state.cache.lengths)))
    self._state = state
    self._used = self._used[rows]

  def generate(self, until: str, temperature: float,
               active: Sequence[bool] | None = None) -> list[Piece]:
    if until not in ('step', 'end'):
      raise ValueError(f"until must be 'step' or 'end', got {until!r}")
    n = self.num_rows
    active = np.ones((n,), bool) if active is None else np.asarray(active)
    if until == 'step':
      return self._step_once(temperature, active)
    # To the end: step after step (one compiled decode loop for both modes),
    # until EOS, the token budget, or a closed box (as the step-wise methods
    # end a solution).
    texts, tokens, flops = [''] * n, [0] * n, [0.0] * n
    finish = ['length'] * n
    going = active.copy()
    while going.any():
      pieces = self._step_once(temperature, going)
      for i in np.flatnonzero(going):
        texts[i] += pieces[i].text
        tokens[i] += pieces[i].num_tokens
        flops[i] += pieces[i].flops
        finish[i] = pieces[i].finish
        going[i] = (pieces[i].finish == 'stop'
                    and extract_boxed(texts[i]) is None)
    return [Piece(texts[i], tokens[i], finish[i] if active[i] else 'length',
                  flops[i]) for i in range(n)]

  def _step_once(self, temperature: float, active: np.ndarray) -> list[Piece]:
    """One step (up to a blank line, EOS or max_step_tokens) of active rows."""
    n, b = self.num_rows, self._state.batch_size
    left = np.minimum(np.maximum(self.max_new_tokens - self._used, 0),
                      self.max_step_tokens)
    max_new = np.zeros((b,), np.int32)
    max_new[:n] = np.where(active, left, 0)
    if not max_new.any():
      return [Piece('', 0, 'length') for _ in range(n)]
    context = np.asarray(self._state.lengths)[:n]
    sampler = self._sampler
    sp = SamplingParams.make(b, temperature=temperature, top_p=self.top_p)
    rng = jax.random.fold_in(self._key, self._calls)
    self._calls += 1
    self._state, out = sampler.decode(self.params, self._state, sp, rng,
                                      max_new)
    tokens, reasons = out.token_lists()[:n], out.finish_reasons()[:n]
    room = np.asarray(self._state.lengths)[:n] < sampler.cache_size
    pieces = []
    for i, (t, r) in enumerate(zip(tokens, reasons)):
      self._used[i] += len(t)
      if (r == 'length' and room[i]
          and self._used[i] < self.max_new_tokens):
        r = 'stop'  # An over-long step ends at max_step_tokens.
      flops = forward_flops(self.config, len(t), context[i] + len(t) / 2)
      pieces.append(Piece(sampler.completion_text(t, r) if t else '', len(t),
                          r if t else 'length', flops))
    return pieces

  def save(self) -> tuple[DecodeState, np.ndarray]:
    return self._state.copy(), self._used.copy()

  def restore(self, saved: tuple[DecodeState, np.ndarray]) -> None:
    self._state, self._used = saved[0], saved[1].copy()
