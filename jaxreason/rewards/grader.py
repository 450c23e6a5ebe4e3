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
_NUMBER = re.compile(r'(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?'
                     r'(?:/\d+)?|(?<![\w.])-?\.\d+')
_CALCULATOR = re.compile(r'<<[^<>]*>>')


def _last_boxed(text: str) -> str | None:
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
  """The answer span after "The answer is": a $...$ span, else the clause."""
  rest = rest.lstrip(' *:\t')
  math = re.match(r'\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]',
                  rest, re.S)
  if math:
    return next(g for g in math.groups() if g is not None).strip()
  line = rest.split('\n', 1)[0]
  return re.match(r'(.*?)(?:\.\s|\.$|$)', line).group(1).strip(' *')


def last_number(text: str) -> str | None:
  """The final number of a solution without an explicit answer, or None.

  `<<a*b=c>>` calculator notes are ignored. In the last line that has a
  number, the number right after its last `=` wins ("9 + 6 = 15 liters out
  of the 24 liters" -> 15); without one, the line's last number.

  Args:
    text: a solution.
  """
  lines = [line for line in _CALCULATOR.sub(' ', text).split('\n')
           if _NUMBER.search(line)]
  if not lines:
    return None
  line = lines[-1]
  after_eq = list(re.finditer(r'=\s*\$?\s*(%s)' % _NUMBER.pattern, line))
  if after_eq:
    return after_eq[-1].group(1)
  return _NUMBER.findall(line)[-1]


def extract_answer(text: str) -> str | None:
  """The final answer in a solution or completion, or None.

  In order of preference: the last complete `\\boxed{...}` (also `\\fbox`,
  `\\framebox`; braces matched, `\\{`/`\\}` skipped), GSM8K's last `#### N`,
  the last "The answer is ..." / "Final Answer: ...", then the last number.

  Args:
    text: model completion or reference solution.

  Returns:
    The answer text (not normalised), or None if nothing was found.
  """
  if not text:
    return None
  boxed = _last_boxed(text)
  if boxed is not None:
    return boxed
  hashes = _HASHES.findall(text)
  if hashes and hashes[-1].strip():
    return hashes[-1].strip()
  for m in reversed(list(_ANSWER_IS.finditer(text))):
    span = _after_answer_is(text[m.end():])
    if span:
      return span
  return last_number(text)


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
