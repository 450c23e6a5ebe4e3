"""Hint-infer (START): a hint library, where hints go, and a repetition filter.

START (Li et al., 2025) nudges a long-CoT model towards its tools by writing
a hint into its reasoning where it would stop (instead of the end-of-sequence
token) or right after words such as "Wait" or "Alternatively", and then
letting it continue. Inserting hint after hint, each time the model would
stop, is sequential test-time scaling: more thinking for a larger token
budget. `HintConfig` says which hints, where and how often; the decoding loop
that inserts them is `jaxreason.reasoning.tir.run`.

The library is plain text. START's hints (its Table 1) mix "use Python"
nudges with "check your answer" ones; `DEFAULT_HINTS` holds a few of both.

`repetition_rate` / `is_repetitive` are the n-gram filter of Hint-RFT
(START drops trajectories that repeat themselves before fine-tuning on them).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

DEFAULT_HINTS = (
    'Wait, maybe using Python here is a good idea.',
    'Wait, I can check this with Python.',
    'Alternatively, let me write Python code to verify the result.',
)


@dataclasses.dataclass(frozen=True)
class HintConfig:
  """Which hints go where, and how many.

  Attributes:
    stop_hints: hints inserted when a row would stop (end-of-sequence): the
      EOS token is taken back out of the cache and `separator + hint +
      separator` is appended. Empty: rows stop as usual.
    words: trigger words (e.g. 'Wait', 'Alternatively'): once a row writes
      one, `word_hints` continues its sentence.
    word_hints: text appended right after a trigger word (e.g. ', maybe
      using Python here is a good idea.\\n'). Empty: words trigger nothing.
    max_hints: hints per row at most (both kinds together).
    min_tokens_left: no hint once fewer generated tokens than this are left
      in the row's budget (a hint with no room to act on it is wasted).
    separator: put around stop hints.
  """

  stop_hints: tuple[str, ...] = ()
  words: tuple[str, ...] = ()
  word_hints: tuple[str, ...] = ()
  max_hints: int = 1
  min_tokens_left: int = 0
  separator: str = '\n'

  def __post_init__(self):
    if self.max_hints < 0:
      raise ValueError(f'hints.max_hints={self.max_hints} must be >= 0')
    if any(not w for w in self.words):
      raise ValueError(f'hints.words has an empty word: {self.words!r}')
    if self.words and not self.word_hints:
      raise ValueError('hints.words is set but hints.word_hints is empty: '
                       'give the text to insert after a trigger word')
    if any(not h for h in self.stop_hints + self.word_hints):
      raise ValueError('hints: empty hint text in stop_hints / word_hints')

  @property
  def enabled(self) -> bool:
    return self.max_hints > 0 and bool(self.stop_hints or self.word_hints)

  @property
  def stop_strings(self) -> tuple[str, ...]:
    """What the sampler must stop at for word hints."""
    return self.words if self.word_hints and self.max_hints > 0 else ()

  def stop_hint(self, k: int) -> str:
    """The k-th stop hint of a row (the library in turn)."""
    h = self.stop_hints[k % len(self.stop_hints)]
    return self.separator + h + self.separator

  def word_hint(self, k: int) -> str:
    return self.word_hints[k % len(self.word_hints)]


def hint_config(d: dict | None) -> HintConfig:
  """A HintConfig from a config dict (None or {} means no hints)."""
  d = dict(d or {})
  unknown = set(d) - {f.name for f in dataclasses.fields(HintConfig)}
  if unknown:
    raise ValueError(f'hints: unknown field(s) {sorted(unknown)}; expected '
                     f'{[f.name for f in dataclasses.fields(HintConfig)]}')
  for key in ('stop_hints', 'words', 'word_hints'):
    if key in d:
      d[key] = tuple(d[key])
  return HintConfig(**d)


_WORD = re.compile(r'\S+')


def repetition_rate(text: str, n: int = 4) -> float:
  """Share of the text's word n-grams that repeat an earlier one, in [0, 1).

  0 for a text without a repeated n-gram (or shorter than n words).
  """
  if n < 1:
    raise ValueError(f'n={n} must be >= 1')
  words = _WORD.findall(text)
  grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
  if not grams:
    return 0.0
  return 1.0 - len(set(grams)) / len(grams)


def is_repetitive(text: str, *, n: int = 4, max_rate: float = 0.3) -> bool:
  """Whether more than `max_rate` of the text's word n-grams are repeats."""
  return repetition_rate(text, n) > max_rate


def first_duplicates(texts: Sequence[str]) -> list[bool]:
  """[i] is True where texts[i] equals an earlier text (exact duplicates)."""
  seen, out = set(), []
  for t in texts:
    out.append(t in seen)
    seen.add(t)
  return out
