r"""Tool-use SFT data on the synthetic arithmetic task (issue 13, item 6).

A tool solution writes the chain as one python expression, reads the output
block and boxes it:

  Start at 482. Multiply by 371, add 519.
  ```python
  print((482*371)+519)
  ```
  ```output
  179341
  ```
  \boxed{179341}

The output block is exactly what `tir.run` appends after the closing fence
(`tir.output_block`), so a model trained on these texts meets the same
tokens at inference; SFT leaves it out of the loss (`tir.OUTPUT_BLOCK` as
`data.masked_blocks`). The matched no-tool solution is the task's own
step-by-step chain (`problem.solution`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from jaxreason.data import synthetic
from jaxreason.reasoning import tir


def expression(problem: synthetic.Problem) -> str:
  """The chain as one python expression, evaluated left to right.

  With a modulus the whole expression is reduced at the end (the same
  value as reducing every step, for + - *).
  """
  expr = str(problem.start)
  for k, (op, b) in enumerate(zip(problem.ops, problem.operands)):
    expr = f'{expr}{op}{b}'
    if k < problem.num_steps - 1:
      expr = f'({expr})'
  if problem.modulus is not None:
    expr = f'({expr})%{problem.modulus}'
  return expr


def tool_solution(problem: synthetic.Problem, *, boxed: bool = True) -> str:
  """Code block, its output block (as the loop appends it), boxed answer.

  `boxed=False`: the solution ends with the output block (PAL style; the
  answer is the program's output, `final_answer`).
  """
  code = f'print({expression(problem)})'
  text = (f'{tir.CODE_OPEN}\n{code}\n{tir.FENCE}'
          + tir.output_block(problem.answer))
  return text + (f'\\boxed{{{problem.answer}}}' if boxed else '')


PROMPTS = ('words', 'expression')


def prompt(problem: synthetic.Problem, style: str = 'words') -> str:
  """'words': the task's question; 'expression': "Compute (68*55)-97.\\n"."""
  if style == 'words':
    return synthetic.format_prompt(problem)
  if style == 'expression':
    return f'Compute {expression(problem)}.\n'
  raise ValueError(f'prompt style {style!r}: expected one of {PROMPTS}')


def final_answer(text: str) -> str | None:
  """The last boxed answer, else the last output block's first line."""
  boxed = synthetic.extract_boxed(text)
  if boxed is not None:
    return boxed
  start = text.rfind(tir.OUTPUT_OPEN)
  if start < 0:
    return None
  body = text[start + len(tir.OUTPUT_OPEN):].split('\n', 1)[0].strip()
  return body or None


def records(problems: Sequence[synthetic.Problem], *, tool: bool,
            prompt_style: str = 'words',
            boxed: bool = True) -> list[dict[str, Any]]:
  """prompt / completion / answer rows: tool solutions or the plain chain."""
  return [{'prompt': prompt(p, prompt_style),
           'completion': tool_solution(p, boxed=boxed) if tool else p.solution,
           'answer': p.answer} for p in problems]


def write_jsonl(path: str, rows: Sequence[dict[str, Any]]) -> str:
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(path + '.tmp', 'w') as f:
    for r in rows:
      f.write(json.dumps(r) + '\n')
  os.replace(path + '.tmp', path)
  return path
