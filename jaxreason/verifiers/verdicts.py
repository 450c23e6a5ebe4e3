r"""Reading a generative verifier's chain: one verdict per step, and its index.

A verification chain (ThinkPRM, an LLM judge) checks the steps of a solution
one by one and writes a boxed verdict for each, then the index of the first
wrong step (0-based, as ProcessBench numbers paragraphs; -1 for none):

  Step 0: 8-5=3 vs 8-5=3 \boxed{correct}
  Step 1: 3+3=6 vs 3+3=7 \boxed{incorrect}
  ...
  First error: \boxed{1}

Models write verdicts in many ways (`\boxed{\text{correct}}`,
`\boxed{\textbf{Incorrect}}`, "so Step 2 is \boxed{correct}."), skip steps,
or stop mid-chain. Parsing never raises: a step without a verdict is `None`
(unknown), and the caller records it.

Assigning verdicts to steps: a verdict belongs to the step named last
("Step k", "step k", "Paragraph k") in the text between the previous verdict
and it; without a name, to the step after the previous verdict's. A later
verdict for the same step overrides an earlier one (a chain that verifies
again revises itself).
"""

from __future__ import annotations

import re
from typing import Sequence

from jaxreason.data.synthetic import arithmetic

_BOX = '\\boxed{'
# \text{...}, \textbf{...}, \mathrm{...}, \mbox{...}: keep the argument.
_WRAPPER_RE = re.compile(r'\\(?:text|textbf|textit|mathrm|mathbf|mbox|bf|rm)'
                         r'\s*\{([^{}]*)\}')
_STEP_NAME_RE = re.compile(r'\b(?:step|paragraph)\s*#?\s*(-?\d+)',
                           re.IGNORECASE)
_INT_RE = re.compile(r'^[-+]?\d+$')
CORRECT = 'correct'
INCORRECT = 'incorrect'


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
  """(start, end, content) of every closed `\\boxed{...}`, in order.

  Nested braces are matched; an unclosed box (a truncated chain) is skipped.
  """
  spans = []
  start = text.find(_BOX)
  while start >= 0:
    i = start + len(_BOX)
    end = arithmetic.closing_brace(text, i)
    if end is None:
      break
    spans.append((start, end + 1, text[i:end]))
    start = text.find(_BOX, end + 1)
  return spans


def normalize_box(content: str) -> str:
  """Box content without LaTeX text wrappers, `$`, spaces, final '.'; lower."""
  prev = None
  while prev != content:  # Peel nested wrappers.
    prev, content = content, _WRAPPER_RE.sub(r'\1', content)
  content = content.replace('$', '').strip().rstrip('.').strip()
  return content.lower()


def verdict_of(content: str) -> bool | None:
  """True for 'correct', False for 'incorrect' (or 'wrong'), else None."""
  c = normalize_box(content)
  if c in (CORRECT, 'right', 'true', 'yes'):
    return True
  if c in (INCORRECT, 'wrong', 'false', 'no', 'not correct'):
    return False
  return None


def parse_verdicts(chain: str, num_steps: int, *,
                   first_step: int = 0) -> tuple[bool | None, ...]:
  """One verdict per step: True (correct), False (incorrect), None (unknown).

  Args:
    chain: The verifier's text.
    num_steps: How many steps the judged solution has.
    first_step: The number the chain gives the first step ("Step 0" with the
      default; 1 for chains that count from one).

  Returns:
    A tuple of `num_steps` entries; boxes that are not verdicts (an index, an
    answer) are ignored, and so are verdicts naming steps out of range.
  """
  out: list[bool | None] = [None] * num_steps
  prev_end, prev_step = 0, -1
  for start, end, content in boxed_spans(chain):
    verdict = verdict_of(content)
    if verdict is None:
      prev_end = end
      continue
    names = _STEP_NAME_RE.findall(chain[prev_end:start])
    step = int(names[-1]) - first_step if names else prev_step + 1
    if 0 <= step < num_steps:
      out[step] = verdict
    prev_end, prev_step = end, step
  return tuple(out)


def parse_final_index(chain: str) -> int | None:
  """The chain's last boxed integer (the predicted first wrong step, -1 for
  none); None when there is none."""
  for _, _, content in reversed(boxed_spans(chain)):
    c = normalize_box(content)
    if _INT_RE.match(c):
      return int(c)
  return None


def first_error_from_verdicts(
    verdicts: Sequence[bool | None]) -> int | None:
  """Index of the first False, -1 if all True; None if an unknown comes first."""
  for i, v in enumerate(verdicts):
    if v is None:
      return None
    if not v:
      return i
  return -1


def verdicts_match(verdicts: Sequence[bool | None],
                   gold: Sequence[bool]) -> bool:
  """Whether verdicts equal the gold labels up to and including the first
  wrong gold step (all steps when none is wrong); unknown never matches."""
  if len(verdicts) != len(gold):
    return False
  stop = list(gold).index(False) if False in gold else len(gold) - 1
  return all(verdicts[i] is not None and verdicts[i] == gold[i]
             for i in range(stop + 1))
