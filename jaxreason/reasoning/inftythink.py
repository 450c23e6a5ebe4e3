"""InftyThink: reasoning in bounded segments, each ending in a summary.

  paragraphs = split_paragraphs(trace)
  segments = fill_segments(paragraphs, count_tokens, eta=96)
  instances = build_instances(question, trace, final, summarise,
                              count_tokens, eta=96)       # SFT records
  turns = SamplerTurns(sampler, params, max_new_tokens=256)
  result = run_inftythink(turns, questions, max_iterations=8)

Data reconstruction follows the InftyThink authors' pipeline (Yan et al.,
2025): a long reasoning trace is split on blank lines; a paragraph that does
not start with an upper-case letter is merged into the one before it (so a
"so ..." or a formula stays with its sentence); paragraphs fill a segment
greedily until its token count reaches the budget `eta`, the paragraph that
crosses `eta` staying in the segment. A summariser (a model, or an exact rule
for the synthetic task, `synthetic_summary`) writes the summary of the
reasoning so far from the previous summary and the new segment. Instance i
is one SFT record:

  prompt      QUESTION\\n<history>SUMMARY_{i-1}</history>\\n    (i > 0)
              QUESTION\\n                                       (i = 0)
  completion  <think>SEGMENT_i</think>\\n<summary>SUMMARY_i</summary>
              <think>SEGMENT_last</think>\\nFINAL                (last)

Inference (`run_inftythink`) rebuilds the prompt from the question and the
latest summary at every iteration, prefills it into a fresh cache of a fixed
size and decodes until `</summary>` or the end of the final answer; at most
`max_iterations` iterations. Tokens in context never exceed one iteration's
prompt plus its output, however long the whole reasoning is; each
problem's peak is recorded (`Trajectory.peak_context`).

The synthetic task (`synthetic_*`): the chains of
`jaxreason.data.synthetic`, written with a compact question ("Start at 3.
Apply +5 -2 *4 in turn, mod 10.") and a verbose trace of two paragraphs per
step ("Apply +5." / "so 3+5=8."), whose second paragraph the
merge rule joins to the first. The exact summariser states the running value
and the operations still to apply ("Value 8, left -2 *4.").
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Protocol, Sequence

import jax
import numpy as np

from jaxreason.data import synthetic
from jaxreason.models.transformer import TransformerConfig
from jaxreason.sampling.sampler import Sampler
from jaxreason.sampling.sampling_params import SamplingParams

HISTORY = ('<history>', '</history>')
THINK = ('<think>', '</think>')
SUMMARY = ('<summary>', '</summary>')
PARAGRAPH_SEP = '\n\n'

# summarise(question, previous summary or None, new segment) -> summary.
Summariser = Callable[[str, 'str | None', str], str]
CountTokens = Callable[[str], int]


# Data reconstruction ----------------------------------------------------------


def split_paragraphs(trace: str) -> list[str]:
  """Blank-line paragraphs, each merged into the previous one unless it starts
  with an upper-case letter (the first paragraph stands whatever it starts
  with). Paragraphs are stripped; merged ones are joined by a blank line.
  """
  raw = [p.strip() for p in re.split(r'\n[ \t]*\n', trace)]
  merged: list[str] = []
  for p in raw:
    if not p:
      continue
    if merged and not p[0].isupper():
      merged[-1] += PARAGRAPH_SEP + p
    else:
      merged.append(p)
  return merged


def fill_segments(paragraphs: Sequence[str], count_tokens: CountTokens,
                  eta: int) -> list[str]:
  """Greedy segments: paragraphs are added until the segment has >= eta tokens.

  The paragraph that makes a segment reach or cross `eta` stays in it (so a
  segment may exceed eta by up to one paragraph); the last segment holds what
  is left and may be shorter. Tokens are counted on the joined segment text.
  """
  if eta < 1:
    raise ValueError(f'eta={eta}: the segment token budget must be >= 1')
  segments, current = [], []
  for p in paragraphs:
    current.append(p)
    if count_tokens(PARAGRAPH_SEP.join(current)) >= eta:
      segments.append(PARAGRAPH_SEP.join(current))
      current = []
  if current:
    segments.append(PARAGRAPH_SEP.join(current))
  return segments


def format_prompt(question: str, summary: str | None = None) -> str:
  """The prompt of one iteration: the question, then the latest summary."""
  prompt = question.rstrip('\n') + '\n'
  if summary is not None:
    prompt += f'{HISTORY[0]}{summary}{HISTORY[1]}\n'
  return prompt


def format_completion(segment: str, summary: str | None = None,
                      final: str | None = None) -> str:
  """`<think>segment</think>` then the summary or (last) the final answer."""
  if (summary is None) == (final is None):
    raise ValueError('a completion has either a summary or a final answer')
  head = f'{THINK[0]}{segment}{THINK[1]}\n'
  if summary is not None:
    return head + f'{SUMMARY[0]}{summary}{SUMMARY[1]}'
  return head + final


@dataclasses.dataclass(frozen=True)
class Instance:
  """One training record of the iterative format (`prompt` + `completion`)."""

  prompt: str
  completion: str
  index: int  # Iteration (segment) number, from 0.
  segment: str
  history: str | None  # The summary in the prompt (None for the first).
  summary: str | None  # The summary written (None for the last).

  def record(self) -> dict[str, str]:
    return {'prompt': self.prompt, 'completion': self.completion}


def build_instances(question: str, trace: str, final: str,
                    summarise: Summariser, count_tokens: CountTokens,
                    eta: int) -> list[Instance]:
  """The InftyThink training instances of one (question, trace, final answer).

  `trace` is the reasoning alone (what was inside <think>...</think>) and
  `final` the text after it (the answer). Segments come from
  `split_paragraphs` and `fill_segments`; every segment but the last gets a
  summary from `summarise(question, previous_summary, segment)`.
  """
  segments = fill_segments(split_paragraphs(trace), count_tokens, eta)
  if not segments:
    raise ValueError('the reasoning trace is empty')
  out, history = [], None
  for i, seg in enumerate(segments):
    last = i == len(segments) - 1
    summary = None if last else summarise(question, history, seg)
    out.append(Instance(
        prompt=format_prompt(question, history),
        completion=format_completion(seg, summary, final if last else None),
        index=i, segment=seg, history=history, summary=summary))
    history = summary
  return out


# The iterative inference loop -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Turn:
  """What one iteration generated for one prompt, in a fresh context."""

  text: str
  prompt_tokens: int
  new_tokens: int
  finish: str  # 'stop' (the summary closed), 'eos', 'length'.

  @property
  def context_tokens(self) -> int:
    """Tokens in the cache when the iteration ended."""
    return self.prompt_tokens + self.new_tokens


class TurnFn(Protocol):
  """One iteration for each prompt, each from an empty context."""

  def __call__(self, prompts: Sequence[str]) -> list[Turn]:
    ...


def parse_turn(text: str) -> tuple[str, str | None]:
  """('summary', text) | ('final', answer text) | ('malformed', None).

  After `</think>`, a `<summary>...</summary>` continues the reasoning; any
  other text is the final answer. Without `</think>` (or with an unclosed
  summary) the turn is malformed, e.g. cut off by the context size.
  """
  if THINK[1] not in text:
    return 'malformed', None
  after = text.split(THINK[1], 1)[1].lstrip('\n')
  if after.startswith(SUMMARY[0]):
    body = after[len(SUMMARY[0]):]
    if SUMMARY[1] not in body:
      return 'malformed', None
    return 'summary', body.split(SUMMARY[1], 1)[0]
  return 'final', after


@dataclasses.dataclass(frozen=True)
class Trajectory:
  """One problem's iterations."""

  question: str
  turns: tuple[Turn, ...]
  summaries: tuple[str, ...]
  final: str | None  # The text after the last </think>, if it was final.
  status: str  # 'final' | 'malformed' | 'max_iterations'.

  @property
  def answer(self) -> str | None:
    return None if self.final is None else synthetic.extract_boxed(self.final)

  @property
  def peak_context(self) -> int:
    """The most tokens in context at once (one iteration's prompt + output)."""
    return max(t.context_tokens for t in self.turns)

  @property
  def generated_tokens(self) -> int:
    return sum(t.new_tokens for t in self.turns)

  @property
  def processed_tokens(self) -> int:
    """Every token prefilled or generated, over all iterations."""
    return sum(t.context_tokens for t in self.turns)


def run_inftythink(turn_fn: TurnFn, questions: Sequence[str], *,
                   max_iterations: int) -> list[Trajectory]:
  """Iterates every question until its final answer (or a bad / last turn).

  Iteration i prompts `format_prompt(question, latest summary)`; all
  unfinished questions go to one `turn_fn` call per iteration.
  """
  if max_iterations < 1:
    raise ValueError(f'max_iterations={max_iterations} must be >= 1')
  n = len(questions)
  turns: list[list[Turn]] = [[] for _ in range(n)]
  summaries: list[list[str]] = [[] for _ in range(n)]
  final: list[str | None] = [None] * n
  status = ['max_iterations'] * n
  active = list(range(n))
  for _ in range(max_iterations):
    if not active:
      break
    prompts = [format_prompt(questions[i],
                             summaries[i][-1] if summaries[i] else None)
               for i in active]
    outs = turn_fn(prompts)
    if len(outs) != len(prompts):
      raise ValueError(f'turn_fn returned {len(outs)} turns for '
                       f'{len(prompts)} prompts')
    still = []
    for i, turn in zip(active, outs):
      turns[i].append(turn)
      kind, value = parse_turn(turn.text)
      if kind == 'summary':
        summaries[i].append(value)
        still.append(i)
      elif kind == 'final':
        final[i], status[i] = value, 'final'
      else:
        status[i] = 'malformed'
    active = still
  return [Trajectory(question=q, turns=tuple(t), summaries=tuple(s),
                     final=f, status=st)
          for q, t, s, f, st in zip(questions, turns, summaries, final,
                                    status)]


class SamplerTurns:
  """A `TurnFn` on the KV-cached `Sampler`: a fresh cache per iteration.

  Every call prefills the prompts (with BOS) into an empty cache of
  `sampler.cache_size` positions and decodes until `</summary>` (the
  sampler's stop strings must include it), EOS, `max_new_tokens` or a full
  cache, `batch_size` prompts at a time. `prompt_tokens + new_tokens` of a
  turn is what its cache holds at the end (`DecodeState.lengths`), so it
  can never exceed the cache size.
  """

  def __init__(self, sampler: Sampler, params, *, max_new_tokens: int,
               temperature: float = 0.0, seed: int = 0,
               batch_size: int = 64):
    if SUMMARY[1] not in sampler.stop_strings:
      raise ValueError(f'the sampler needs stop_strings including '
                       f'{SUMMARY[1]!r}, got {sampler.stop_strings}')
    if sampler.tokenizer is None:
      raise ValueError('the sampler needs a tokenizer')
    self.sampler, self.params = sampler, params
    self.max_new_tokens, self.temperature = max_new_tokens, temperature
    self.batch_size = batch_size
    self.rng = jax.random.key(seed)
    self.calls = 0

  def __call__(self, prompts: Sequence[str]) -> list[Turn]:
    tok, size = self.sampler.tokenizer, self.sampler.cache_size
    ids = [tok.encode(p, add_bos=True) for p in prompts]
    for p, i in zip(prompts, ids):
      if len(i) >= size:
        raise ValueError(f'a prompt of {len(i)} tokens leaves no room in '
                         f'cache_size={size}: {p[:80]!r}...')
    turns = []
    for start in range(0, len(ids), self.batch_size):
      chunk = ids[start:start + self.batch_size]
      state = self.sampler.prefill(self.params, chunk, pad_rows=True)
      rows = state.batch_size
      sp = SamplingParams.make(rows, temperature=self.temperature)
      budget = np.zeros(rows, np.int32)
      budget[:len(chunk)] = [min(self.max_new_tokens, size - len(c))
                             for c in chunk]
      rng = jax.random.fold_in(self.rng, self.calls * 100_003 + start)
      state, out = self.sampler.decode(self.params, state, sp, rng, budget)
      lengths = np.asarray(state.lengths)
      for b, (toks, reason) in enumerate(zip(out.token_lists(),
                                             out.finish_reasons())):
        if b >= len(chunk):
          break
        assert lengths[b] == len(chunk[b]) + len(toks), (
            lengths[b], len(chunk[b]), len(toks))
        turns.append(Turn(
            text=self.sampler.completion_text(toks, reason),
            prompt_tokens=len(chunk[b]), new_tokens=len(toks),
            finish=reason))
    self.calls += 1
    return turns


def kv_bytes_per_token(config: TransformerConfig) -> int:
  """KV-cache bytes one token occupies: keys and values of every layer."""
  itemsize = np.dtype(config.jnp_dtype).itemsize
  return 2 * config.num_layers * config.num_kv_heads * config.head_size * (
      itemsize)


# The synthetic task -----------------------------------------------------------

_Q_RE = re.compile(r'^Start at (-?\d+)\. Apply (.*) in turn(?:, mod (\d+))?\.$')
_OP_RE = re.compile(r'([-+*])(\d+)')
_STEP_RE = re.compile(r'\bso (-?\d+)([-+*])(\d+)=(-?\d+)\.')
_SUMMARY_RE = re.compile(r'^Value (-?\d+), left (.*)\.$')


def _ops_text(ops: Sequence[str], operands: Sequence[int]) -> str:
  return ' '.join(f'{op}{b}' for op, b in zip(ops, operands)) or 'none'


def synthetic_question(problem: synthetic.Problem) -> str:
  """'Start at 3. Apply +5 -2 *4 in turn, mod 10.' (no modulus: no ', mod')."""
  mod = f', mod {problem.modulus}' if problem.modulus is not None else ''
  return (f'Start at {problem.start}. Apply '
          f'{_ops_text(problem.ops, problem.operands)} in turn{mod}.')


def synthetic_trace(problem: synthetic.Problem) -> str:
  """The reasoning: per step 'Apply +5.' and 'so 3+5=8.' (merged)."""
  paragraphs = []
  for a, op, b, r in zip(problem.inputs, problem.ops, problem.operands,
                         problem.values):
    paragraphs += [f'Apply {op}{b}.', f'so {a}{op}{b}={r}.']
  paragraphs.append(f'So the answer is {problem.answer}.')
  return PARAGRAPH_SEP.join(paragraphs)


def synthetic_final(problem: synthetic.Problem) -> str:
  return f'\\boxed{{{problem.answer}}}'


def synthetic_summary(question: str, previous: str | None,
                      segment: str) -> str:
  """The exact summariser: 'Value v, left OPS.' after this segment.

  Reads the operations still to apply from the previous summary (the
  question's list for the first segment), drops one per step the segment
  works out, and takes the value from the segment's last step (the
  previous value if it has none).
  """
  if previous is None:
    m = _Q_RE.match(question.strip())
    if m is None:
      raise ValueError(f'not a synthetic InftyThink question: {question!r}')
    value, ops = m.group(1), m.group(2)
  else:
    m = _SUMMARY_RE.match(previous)
    if m is None:
      raise ValueError(f'not a synthetic summary: {previous!r}')
    value, ops = m.group(1), m.group(2)
  left = [] if ops == 'none' else _OP_RE.findall(ops)
  steps = _STEP_RE.findall(segment)
  if len(steps) > len(left):
    raise ValueError(f'{len(steps)} steps in the segment, {len(left)} left')
  if steps:
    value = steps[-1][3]
  left = left[len(steps):]
  return (f'Value {value}, left '
          f'{_ops_text([o for o, _ in left], [int(b) for _, b in left])}.')


def synthetic_instances(problem: synthetic.Problem, count_tokens: CountTokens,
                        eta: int) -> list[Instance]:
  """`build_instances` of a problem's synthetic trace, exact summaries."""
  return build_instances(synthetic_question(problem), synthetic_trace(problem),
                         synthetic_final(problem), synthetic_summary,
                         count_tokens, eta)


def synthetic_monolithic(problem: synthetic.Problem) -> dict[str, str]:
  """The whole trace as one record: `<think>TRACE</think>\\nFINAL`."""
  return {'prompt': format_prompt(synthetic_question(problem)),
          'completion': format_completion(synthetic_trace(problem),
                                          final=synthetic_final(problem))}
