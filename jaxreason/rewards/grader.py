"""Final-answer extraction and equivalence for math reasoning.

Public API:
  extract_answer(text) -> str | None
  answers_match(pred, gold, *, timeout=DEFAULT_TIMEOUT) -> bool
  grade(completion, gold) -> bool

`answers_match` first normalises both strings and compares them in-process
(strings, numbers with tolerance, tuples, intervals, sets, matrices,
equations, multiple choice; rules and tolerances in `answer_match.py`). Only
when that cannot decide (for example `\\sqrt{2}/2` against
`\\frac{\\sqrt2}{2}`) is the pair sent to a worker process that compares with
SymPy / math-verify under a hard timeout (`timeout_pool.py`): the worker is
killed if it overruns, so a hanging SymPy call costs the caller at most
`timeout` seconds, from any thread. Results of worker calls are cached.

Example:
  >>> grade('... so the total is $\\boxed{\\frac{1}{2}}$.', '0.5')
  True
"""

from __future__ import annotations

import functools
import os
import re

from absl import logging

from jaxreason.rewards import answer_match
from jaxreason.rewards import symbolic
from jaxreason.rewards import timeout_pool

DEFAULT_TIMEOUT = 5.0  # Seconds per symbolic comparison.
MAX_ANSWER_CHARS = 1000  # Longer answers only match if identical.

_POOL = timeout_pool.TimeoutPool(max_workers=min(4, os.cpu_count() or 1),
                                 initializer=symbolic.init_worker)

# ----------------------------------------------------------------- extraction

_BOX = re.compile(r'\\(?:boxed|fbox|framebox)(?![a-zA-Z])')
_HASHES = re.compile(r'####\s*([^\n]*)')
_ANSWER_IS = re.compile(
    r'(?:final answer|the answer)\s*(?:is\b|:)|\banswer\s*:', re.IGNORECASE)
# Thousands may be grouped by commas or single spaces ("$118 000").
_NUMBER = re.compile(r'(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+'
                     r'|\d{1,3}(?: \d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+)?'
                     r'|(?<![\w.])-?\.\d+')
_MATH_WORDS = frozenset(('pi', 'sqrt', 'frac', 'cdot', 'times', 'infty', 'log',
                         'ln', 'sin', 'cos', 'tan', 'mod'))
_CALCULATOR = re.compile(r'<<[^<>]*>>')
_SENTENCE = re.compile(r'\n|(?<=[.!?])\s+')


def last_boxed(text: str) -> str | None:
  """Content of the last complete `\\boxed{}` / `\\fbox{}` / `\\framebox{}`."""
  for m in reversed(list(_BOX.finditer(text))):
    i = m.end()
    while i < len(text) and text[i] == ' ':
      i += 1
    if text.startswith('[', i):  # \framebox[width]{...}
      j = text.find(']', i)
      if j < 0:
        continue
      i = j + 1
    if text.startswith('{', i):
      end = answer_match.close_brace(text, i)
      if end >= 0:
        return text[i + 1:end].strip()
      continue  # Unclosed (truncated) box: try an earlier one.
    bare = re.match(r'[^\s$]+', text[i:])  # \boxed 5
    if bare:
      return bare.group()
  return None


def _after_answer_is(rest: str) -> str:
  """The answer after "The answer is": a math span, else the clause.

  A clause of words and one number ("Verna received $7.00 in change",
  "therefore 3") gives that number.
  """
  rest = rest.lstrip(' *:\t')
  spans = _math_spans(rest[:4000])
  if spans and spans[0][0] == 0:
    return spans[0][2].strip()
  line = rest.split('\n', 1)[0]
  clause = re.match(r'(.*?)(?:\.\s|\.$|$)', line).group(1).strip(' *')
  numbers = _NUMBER.findall(clause)
  words = set(re.findall(r'[A-Za-z]{2,}', clause))
  if (words and not words & _MATH_WORDS and len(numbers) == 1
      and '\\' not in clause):
    return numbers[0]
  return clause


def _math_spans(text: str) -> list[tuple[int, int, str]]:
  """(start, end, content) of `$$..$$`, `\\(..\\)`, `\\[..\\]`, `$..$` spans.

  A `$` pair whose content starts or ends with a space, or whose closing `$`
  is followed by a digit, is read as two currency signs ("$25 + $10").
  """
  spans = []
  for m in re.finditer(r'\$\$(.+?)\$\$|\\\((.+?)\\\)|\\\[(.+?)\\\]', text,
                       re.S):
    spans.append((m.start(), m.end(), next(g for g in m.groups() if g)))
  masked = list(text)
  for a, b, _ in spans:
    masked[a:b] = ' ' * (b - a)
  dollars = [i for i, c in enumerate(masked)
             if c == '$' and (i == 0 or masked[i - 1] != '\\')]
  k = 0
  while k + 1 < len(dollars):
    i, j = dollars[k], dollars[k + 1]
    content = text[i + 1:j]
    if (content.strip() and not content[0].isspace()
        and not content[-1].isspace() and not text[j + 1:j + 2].isdigit()):
      spans.append((i, j + 1, content))
      k += 2
    else:
      k += 1
  return sorted(spans)


def last_number(text: str) -> str | None:
  """The final number of a solution without an explicit answer, or None.

  `<<a*b=c>>` calculator notes are ignored. In the last sentence that has a
  number, the number right after its last `=` wins ("9 + 6 = 15 liters out
  of the 24 liters" -> 15); without one, the sentence's last number.

  Args:
    text: a solution.
  """
  sentences = [x for x in _SENTENCE.split(_CALCULATOR.sub(' ', text))
               if _NUMBER.search(x)]
  if not sentences:
    return None
  after_eq = list(re.finditer(r'=\s*\$?\s*(%s)' % _NUMBER.pattern,
                              sentences[-1]))
  if after_eq:
    return after_eq[-1].group(1)
  return _NUMBER.findall(sentences[-1])[-1]


def _fallback(text: str) -> str | None:
  """Without a box or answer phrase: the last math span or `last_number`.

  The math span wins if no number follows it ("so $\\cos A = -\\frac{24}{25}$.").
  """
  text = _CALCULATOR.sub(' ', text)
  spans = [s for s in _math_spans(text) if re.search(r'[\d\\]', s[2])]
  numbers = list(_NUMBER.finditer(text))
  if spans and (not numbers or numbers[-1].start() < spans[-1][1]):
    return spans[-1][2].strip()
  return last_number(text)


def extract_answer(text: str) -> str | None:
  """The final answer in a solution or completion, or None.

  In order of preference: the last complete `\\boxed{...}` (also `\\fbox`,
  `\\framebox`; braces matched, `\\{`/`\\}` skipped), GSM8K's last `#### N`,
  the last "The answer is ..." / "Final Answer: ...", then (fallback) the
  last math span if no number follows it, else the last number of the last
  sentence (the one right after its last `=` if there is one).

  Args:
    text: model completion or reference solution.

  Returns:
    The answer text (not normalised), or None if nothing was found.
  """
  if not text:
    return None
  boxed = last_boxed(text)
  if boxed is not None:
    return boxed
  hashes = _HASHES.findall(text)
  if hashes and hashes[-1].strip():
    return hashes[-1].strip()
  for m in reversed(list(_ANSWER_IS.finditer(text))):
    span = _after_answer_is(text[m.end():])
    if span:
      return span
  return _fallback(text)


# ----------------------------------------------------------------- matching


@functools.lru_cache(maxsize=8192)
def _symbolic_match(pred: str, gold: str, timeout: float) -> bool:
  out = _POOL.call(symbolic.symbolic_match_job, (pred, gold, 0.9 * timeout),
                   timeout)
  return out is True


def answers_match(pred: str, gold: str, *,
                  timeout: float = DEFAULT_TIMEOUT) -> bool:
  """Whether answer `pred` is equivalent to reference answer `gold`.

  Args:
    pred: an extracted answer (LaTeX or plain text).
    gold: the reference answer.
    timeout: seconds the symbolic (SymPy) comparison may take; when it
      overruns the answers count as different. Fast paths do not use it.

  Returns:
    True if equivalent under the rules in `answer_match.py` or SymPy.
  """
  if pred is None or gold is None:
    return False
  try:
    if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
      return pred.strip() == gold.strip()
    p, g = answer_match.normalize(pred), answer_match.normalize(gold)
    if not p or not g:
      return False
    fast = answer_match.match(p, g, answer_match.fast_leaf)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('answers_match(%r, %r) failed: %s', pred[:80], gold[:80], e)
    return False
  if fast is not None:
    return fast
  return _symbolic_match(p, g, float(timeout))


def grade(completion: str, gold: str) -> bool:
  """extract_answer(completion) matched against `gold` (no answer: False)."""
  pred = extract_answer(completion)
  return pred is not None and answers_match(pred, gold)


def warmup() -> None:
  """Starts the symbolic worker processes now (else on first use)."""
  _POOL.warmup()


def shutdown() -> None:
  """Stops idle symbolic worker processes (they restart when needed)."""
  _POOL.close()
