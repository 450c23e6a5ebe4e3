r"""Prompts for math evaluation: a chat template or a raw text template.

  cfg = dict(chat=True, system=QWEN_MATH_SYSTEM, user='{problem}')
  text = build_prompt('What is 1+1?', tokenizer, cfg)
  -> '<|im_start|>system\nPlease reason step by step, and put your final
      answer within \\boxed{}.<|im_end|>\n<|im_start|>user\nWhat is 1+1?
      <|im_end|>\n<|im_start|>assistant\n'

With `chat=True` the messages go through `tokenizer.apply_chat_template`
(ChatML, the format of Qwen2.5 and of every tokenizer here; see
jaxreason/data/tokenizer.py): an optional system message, then the user
message `user.format(problem=...)`, then the opened assistant turn. With
`chat=False` the prompt is `raw.format(problem=...)`, for base models and
for the synthetic task, whose models were trained on `question + '\n'`
(`synthetic.format_prompt`).

The default system prompt is Qwen2.5-Math's chain-of-thought prompt, which
asks for the answer in \boxed{} (what `grader.extract_answer` looks for
first).
"""

from __future__ import annotations

from typing import Any, Mapping

from jaxreason import config_defaults
from jaxreason.data.tokenizer import Tokenizer

QWEN_MATH_SYSTEM = config_defaults.QWEN_MATH_SYSTEM


def build_prompt(problem: str, tokenizer: Tokenizer,
                 cfg: Mapping[str, Any]) -> str:
  """The prompt text for one problem (see the module docstring).

  Args:
    problem: the problem statement.
    tokenizer: for its chat template.
    cfg: `chat` (bool), `system` (str, '' for none), `user` and `raw`
      (format strings with a `{problem}` field; literal braces doubled).

  Returns:
    The text to encode; generation continues right after it.
  """
  if cfg.get('chat', True):
    messages = []
    if cfg.get('system'):
      messages.append({'role': 'system', 'content': str(cfg['system'])})
    messages.append({'role': 'user', 'content': str(
        cfg.get('user', '{problem}')).format(problem=problem)})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True)
  return str(cfg.get('raw', '{problem}\n')).format(problem=problem)


def encode_prompt(text: str, tokenizer: Tokenizer) -> list[int]:
  """Token ids of a prompt, with bos when the tokenizer has one."""
  return tokenizer.encode(text, add_bos=tokenizer.bos_id is not None)
