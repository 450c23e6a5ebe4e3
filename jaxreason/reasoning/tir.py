r"""Tool-integrated reasoning (TIR) with hint-infer: a host loop over a cached LM.

The format is Qwen2.5-Math's tool-integrated one, which START uses too:

  Start at 482. Multiply by 37, add 519.
  ```python
  print((482*37)+519)
  ```
  ```output
  18353
  ```
  \boxed{18353}

The model writes the python block. The sampler stops every row at a fence
(the stop string "```", matched per row on device); the host looks at the
row's text: a fence that closes a ```python block is a tool call, any other
fence (an opening one) just lets the row go on. The code runs in the sandbox
(`jaxreason.reasoning.sandbox.run_python`, or any `executor` with its
signature), and `output_block(result)` -- stdout, or the error's last line,
or the limit that was hit, truncated to `max_output_chars` -- is appended to
the row. Decoding then continues from the KV cache: `Sampler.extend` encodes
only the appended tokens. A row ends at end-of-sequence, when its budget of
generated tokens (or the cache) is spent, or when it closes code block
`max_calls + 1` ('call_limit').

Hints (`hints.HintConfig`) ride on the same loop: a row that emits EOS gets
the EOS token taken back out of its cache (its length decremented; nothing
re-encoded) and a stop hint appended; a row that writes a trigger word gets
the word hint appended; then it continues.

  lm = SamplerLM(config, params, tokenizer, cache_size=512,
                 stop_strings=loop_stop_strings(tools, hints))
  rows = run(lm, prompts, LoopConfig(max_new_tokens=256, tools=tools,
                                     hints=hints))
  rows[0].text, rows[0].num_calls, rows[0].statuses, rows[0].num_generated

Any model that implements `RowLM` (start / decode / extend / rewind) runs in
the loop; the tests drive it with a scripted text model.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any, Callable, Protocol, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.data.tokenizer import Tokenizer
from jaxreason.models.transformer import TransformerConfig
from jaxreason.reasoning.hints import HintConfig
from jaxreason.reasoning import sandbox
from jaxreason.sampling.sampler import Sampler
from jaxreason.sampling.sampling_params import SamplingParams

FENCE = '```'
CODE_OPEN = '```python'
OUTPUT_OPEN = '\n```output\n'
OUTPUT_CLOSE = '\n```\n'
# For SFT data: tool output is read, never written (pipeline masked_blocks).
OUTPUT_BLOCK = (OUTPUT_OPEN, OUTPUT_CLOSE)
# Finish reasons of a row.
FINISHES = ('eos', 'length', 'call_limit')
STATUSES = ('ok', 'error', 'timeout', 'memory', 'output_limit', 'killed')

Executor = Callable[..., Any]  # (code, *, timeout_s, memory_mb) -> result.


@dataclasses.dataclass(frozen=True)
class ToolConfig:
  """The python tool.

  Attributes:
    enabled: False: fences are ordinary text (no stop, nothing runs).
    max_calls: C, tool calls per row; closing block C + 1 ends the row.
    timeout_s, memory_mb: the sandbox's limits per call.
    max_output_chars: longer output is cut, with a note of how much.
    workers: calls of one round run concurrently in this many threads.
  """

  enabled: bool = True
  max_calls: int = 4
  timeout_s: float = 5.0
  memory_mb: int = 256
  max_output_chars: int = 512
  workers: int = 4

  def __post_init__(self):
    if self.max_calls < 0 or self.max_output_chars < 16 or self.workers < 1:
      raise ValueError(f'tools: need max_calls >= 0, max_output_chars >= 16 '
                       f'and workers >= 1, got {self}')


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  max_new_tokens: int  # Generated tokens per row (appended ones not counted).
  tools: ToolConfig = ToolConfig()
  hints: HintConfig = HintConfig()

  def __post_init__(self):
    if self.max_new_tokens < 1:
      raise ValueError(f'max_new_tokens={self.max_new_tokens} must be >= 1')


def loop_stop_strings(tools: ToolConfig, hints: HintConfig) -> tuple[str, ...]:
  """The stop strings a `SamplerLM` needs for this tool and hint setting."""
  return ((FENCE,) if tools.enabled else ()) + hints.stop_strings


@dataclasses.dataclass(frozen=True)
class Piece:
  """What one `RowLM.decode` generated for a row."""

  text: str
  num_tokens: int
  finish: str  # 'stop' (a stop string), 'eos', 'length'.


class RowLM(Protocol):
  """A batch of rows that grow by decoding and by appended text."""

  def start(self, prompts: Sequence[str]) -> None:
    """One row per prompt (encoded once)."""

  def decode(self, max_new: Sequence[int]) -> list[Piece]:
    """Up to max_new[i] tokens per row (0: the row stays), to a stop string,
    EOS or the cache's end."""

  def extend(self, texts: Sequence[str]) -> None:
    """Appends text to rows ('' for none) without re-encoding them."""

  def rewind(self, rows: Sequence[int]) -> None:
    """Takes these rows' last token (their EOS) back out."""


@dataclasses.dataclass(frozen=True)
class ToolCall:
  code: str
  status: str  # One of STATUSES.
  output: str  # The output block's body, as appended.


@dataclasses.dataclass(frozen=True)
class Trajectory:
  """One row's result.

  `segments` are (text, kind) pieces in order, kind 'model' (generated),
  'output' (a tool's output block) or 'hint'; they join to `text`.
  """

  prompt: str
  text: str
  segments: tuple[tuple[str, str], ...]
  calls: tuple[ToolCall, ...]
  hints: tuple[str, ...]
  num_generated: int
  finish: str

  @property
  def num_calls(self) -> int:
    return len(self.calls)

  @property
  def statuses(self) -> tuple[str, ...]:
    return tuple(c.status for c in self.calls)

  def to_json(self) -> dict[str, Any]:
    return {'prompt': self.prompt, 'text': self.text,
            'num_calls': self.num_calls, 'statuses': list(self.statuses),
            'calls': [dataclasses.asdict(c) for c in self.calls],
            'hints': list(self.hints), 'num_generated': self.num_generated,
            'finish': self.finish}


def _truncate(text: str, limit: int) -> str:
  if len(text) <= limit:
    return text
  note = f'\n... [{len(text) - limit} more characters]'
  return text[:limit] + note


def output_body(result: Any, *, max_chars: int, timeout_s: float) -> str:
  """What the model reads of a sandbox result (Qwen2.5-Math style).

  ok: stdout. error: stdout, then the last line of stderr (e.g.
  "SyntaxError: invalid syntax"). A hit limit adds a line naming it.
  """
  status = getattr(result, 'status', 'error')
  out = (getattr(result, 'stdout', '') or '').rstrip('\n')
  err_lines = [l for l in (getattr(result, 'stderr', '') or '').splitlines()
               if l.strip()]
  notes = {'timeout': f'TimeoutError: the code ran past {timeout_s:g} s',
           'memory': 'MemoryError: the code ran out of memory',
           'output_limit': '[output limit reached]',
           'killed': '[the process was killed]'}
  lines = [out] if out else []
  if status == 'error' and err_lines:
    lines.append(err_lines[-1])
  elif status in notes:
    lines.append(notes[status])
  elif status != 'ok':
    lines.append(f'[status {status}]')
  return _truncate('\n'.join(lines), max_chars)


def output_block(body: str) -> str:
  return OUTPUT_OPEN + body + OUTPUT_CLOSE


def closed_code(text: str) -> str | None:
  """The code of a python block that the text's last fence closes, else None."""
  end = text.rfind(FENCE)
  if end < 0:
    return None
  before = text[:end]
  start = before.rfind(CODE_OPEN)
  if start < 0 or FENCE in before[start + len(CODE_OPEN):]:
    return None
  return before[start + len(CODE_OPEN):].strip('\n')


def default_executor(code: str, *, timeout_s: float, memory_mb: int) -> Any:
  """`sandbox.run_python` with the loop's limits."""
  return sandbox.run_python(code, timeout_s=timeout_s, memory_mb=memory_mb)


@dataclasses.dataclass(frozen=True)
class _Failed:
  stdout: str
  stderr: str
  status: str = 'error'
  exit_code: int = -1


def _execute(executor: Executor, code: str, tools: ToolConfig) -> Any:
  """Never raises: an executor failure is an 'error' result."""
  try:
    return executor(code, timeout_s=tools.timeout_s, memory_mb=tools.memory_mb)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('tool executor raised %r', e)
    return _Failed('', f'{type(e).__name__}: {e}')


@dataclasses.dataclass
class _Row:
  prompt: str
  segments: list = dataclasses.field(default_factory=list)
  calls: list = dataclasses.field(default_factory=list)
  hints: list = dataclasses.field(default_factory=list)
  generated: int = 0
  finish: str | None = None

  @property
  def text(self) -> str:
    return ''.join(s for s, _ in self.segments)

  def add(self, text: str, kind: str) -> None:
    if text and kind == 'model' and self.segments and (
        self.segments[-1][1] == 'model'):  # One segment per stretch.
      self.segments[-1] = (self.segments[-1][0] + text, kind)
    elif text:
      self.segments.append((text, kind))

  def freeze(self) -> Trajectory:
    return Trajectory(self.prompt, self.text, tuple(self.segments),
                      tuple(self.calls), tuple(self.hints), self.generated,
                      self.finish or 'length')


def _ends_with_word(text: str, words: Sequence[str]) -> bool:
  """Whether a trigger word ends in the text's last few characters."""
  tail = text[-max(len(w) for w in words) - 8:]
  return any(w in tail for w in words)


def run(lm: RowLM, prompts: Sequence[str], cfg: LoopConfig,
        executor: Executor | None = None) -> list[Trajectory]:
  """Decodes every prompt with tool calls and hints (module docstring).

  The LM must stop at `loop_stop_strings(cfg.tools, cfg.hints)`. Each round
  decodes all running rows once, then runs the round's tool calls together
  and appends outputs and hints in one `extend`.
  """
  tools, hints = cfg.tools, cfg.hints
  executor = executor or default_executor
  rows = [_Row(p) for p in prompts]
  lm.start(prompts)
  pool = concurrent.futures.ThreadPoolExecutor(tools.workers)
  try:
    while True:
      running = [i for i, r in enumerate(rows) if r.finish is None]
      if not running:
        break
      max_new = [0] * len(rows)
      for i in running:
        max_new[i] = cfg.max_new_tokens - rows[i].generated
      pieces = lm.decode(max_new)
      appends, rewinds, calls = [''] * len(rows), [], {}
      for i in running:
        r, p = rows[i], pieces[i]
        r.add(p.text, 'model')
        r.generated += p.num_tokens
        left = cfg.max_new_tokens - r.generated
        can_hint = (hints.enabled and len(r.hints) < hints.max_hints
                    and left >= max(hints.min_tokens_left, 1))
        if p.finish == 'eos':
          if can_hint and hints.stop_hints:
            rewinds.append(i)  # The EOS stays counted: it was computed.
            appends[i] = hints.stop_hint(len(r.hints))
          else:
            r.finish = 'eos'
        elif p.finish == 'length' or left <= 0:
          r.finish = 'length'
        elif tools.enabled and (code := closed_code(r.text)) is not None:
          if len(r.calls) >= tools.max_calls:
            r.finish = 'call_limit'
          else:
            calls[i] = pool.submit(_execute, executor, code, tools)
            r.calls.append(code)
        elif (can_hint and hints.stop_strings
              and _ends_with_word(r.text, hints.words)):
          appends[i] = hints.word_hint(len(r.hints))
        # Any other stop (an opening fence): the row just goes on.
        if appends[i] and i not in calls:
          r.hints.append(appends[i])
      for i, future in calls.items():
        r = rows[i]
        body = output_body(future.result(), max_chars=tools.max_output_chars,
                           timeout_s=tools.timeout_s)
        status = getattr(future.result(), 'status', 'error')
        r.calls[-1] = ToolCall(r.calls[-1], status, body)
        appends[i] = output_block(body)
      if rewinds:
        lm.rewind(rewinds)
      for i, a in enumerate(appends):
        if a:
          rows[i].add(a, 'output' if i in calls else 'hint')
      if any(appends):
        lm.extend(appends)
  finally:
    pool.shutdown(wait=True)
  return [r.freeze() for r in rows]


# The KV-cached model ----------------------------------------------------------


class SamplerLM:
  """`RowLM` on `jaxreason.sampling.Sampler`: one prefill, then appends only.

  Rows are padded to the sampler's row buckets. `stats` counts the tokens
  encoded by prefill and by extend, and the decode calls: a loop that
  re-encoded its context would show it there.

  Args:
    config, params, tokenizer: the policy.
    cache_size: positions per row (prompt + generated + appended).
    stop_strings: `loop_stop_strings(...)`.
    temperature, top_p: sampling (0: greedy).
    seed: decode call k uses fold_in(key(seed), k).
    eos_ids: None: the tokenizer's and the model's.
  """

  def __init__(self, config: TransformerConfig, params: Any,
               tokenizer: Tokenizer, *, cache_size: int,
               stop_strings: Sequence[str] = (), temperature: float = 0.0,
               top_p: float = 1.0, seed: int = 0,
               eos_ids: Sequence[int] | None = None):
    self.params, self.tokenizer = params, tokenizer
    self.sampler = Sampler(config, cache_size=cache_size, tokenizer=tokenizer,
                           stop_strings=tuple(stop_strings), eos_ids=eos_ids)
    self.temperature, self.top_p = temperature, top_p
    self._key = jax.random.key(seed)
    self.state = None
    self.num_rows = 0
    self.stats = {'prefill_tokens': 0, 'extend_tokens': 0, 'decode_calls': 0,
                  'prefill_calls': 0}

  def encode(self, text: str) -> list[int]:
    """Token ids; characters the tokenizer lacks become '?' (tool output)."""
    try:
      return self.tokenizer.encode(text)
    except ValueError:
      ids = []
      for ch in text:
        try:
          ids += self.tokenizer.encode(ch)
        except ValueError:
          ids += self.tokenizer.encode('?')
      return ids

  def start(self, prompts: Sequence[str]) -> None:
    bos = self.tokenizer.bos_id is not None
    tokens = [self.tokenizer.encode(p, add_bos=bos) for p in prompts]
    self.state = self.sampler.prefill(self.params, tokens, pad_rows=True)
    self.num_rows = len(prompts)
    self.stats['prefill_tokens'] += sum(map(len, tokens))
    self.stats['prefill_calls'] += 1

  def decode(self, max_new: Sequence[int]) -> list[Piece]:
    n, b = self.num_rows, self.state.batch_size
    room = self.sampler.cache_size - np.asarray(self.state.lengths)
    budget = np.zeros((b,), np.int32)
    budget[:n] = np.minimum(np.maximum(np.asarray(max_new), 0), room[:n])
    sp = SamplingParams.make(b, temperature=self.temperature, top_p=self.top_p)
    rng = jax.random.fold_in(self._key, self.stats['decode_calls'])
    self.stats['decode_calls'] += 1
    self.state, out = self.sampler.decode(self.params, self.state, sp, rng,
                                          budget)
    pieces = []
    for i, (t, r) in enumerate(zip(out.token_lists()[:n],
                                   out.finish_reasons()[:n])):
      if not t:
        r = 'length'
      text = self.sampler.completion_text(t, r) if t else ''
      pieces.append(Piece(text, len(t), r))
    return pieces

  def extend(self, texts: Sequence[str]) -> None:
    lengths = np.asarray(self.state.lengths)
    seqs = [[] for _ in range(self.state.batch_size)]
    for i, text in enumerate(texts):
      ids = self.encode(text) if text else []
      room = self.sampler.cache_size - int(lengths[i])
      if len(ids) > room:
        logging.warning('row %d: %d appended tokens cut to the %d left in the '
                        'cache', i, len(ids), room)
        ids = ids[:room]
      seqs[i] = ids
      self.stats['extend_tokens'] += len(ids)
    self.state = self.sampler.extend(self.params, self.state, seqs)

  def rewind(self, rows: Sequence[int]) -> None:
    drop = np.zeros((self.state.batch_size,), np.int32)
    drop[list(rows)] = 1
    cache = self.state.cache
    self.state = self.state.replace(cache=cache.replace(
        lengths=jnp.maximum(cache.lengths - jnp.asarray(drop), 0)))
