"""Hint library settings, the n-gram repetition filter and tool SFT data."""

import numpy as np
import pytest

from jaxreason.data import pipeline, synthetic
from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.reasoning import hints, tir, tir_data


def test_repetition_rate_by_hand():
  assert hints.repetition_rate('a b c d e f', n=2) == 0.0
  # 2-grams: (a b) (b a) (a b) (b a) (a b): 2 distinct of 5.
  assert hints.repetition_rate('a b a b a b', n=2) == pytest.approx(0.6)
  assert hints.repetition_rate('too short', n=4) == 0.0
  assert hints.is_repetitive('x y ' * 20, n=4, max_rate=0.3)
  assert not hints.is_repetitive('one two three four five six', n=4)
  assert hints.first_duplicates(['a', 'b', 'a', 'a']) == [False, False, True,
                                                          True]


def test_hint_config_checks_its_fields():
  with pytest.raises(ValueError, match='word_hints is empty'):
    hints.HintConfig(words=('Wait',))
  with pytest.raises(ValueError, match=r"unknown field\(s\) \['hint'\]"):
    hints.hint_config({'hint': 'x'})
  off = hints.hint_config(None)
  assert not off.enabled and off.stop_strings == ()
  on = hints.hint_config({'words': ['Wait'], 'word_hints': [', hm'],
                          'max_hints': 2})
  assert on.enabled and on.stop_strings == ('Wait',)
  assert on.word_hint(3) == ', hm'
  assert tir.loop_stop_strings(tir.ToolConfig(), on) == ('```', 'Wait')


def test_tool_solutions_compute_the_answer():
  cfg = synthetic.ArithmeticConfig(num_steps=3, min_operand=100,
                                   max_operand=999, modulus=None,
                                   word_problem=False)
  rng = np.random.default_rng(0)
  for _ in range(50):
    p = synthetic.generate_problem(rng, cfg)
    assert eval(tir_data.expression(p), {}) == int(p.answer)  # pylint: disable=eval-used
  mod = synthetic.generate_problem(rng, synthetic.ArithmeticConfig())
  assert eval(tir_data.expression(mod), {}) == int(mod.answer)  # pylint: disable=eval-used
  text = tir_data.tool_solution(p)
  assert tir.closed_code(text[:text.index('\n```output')]) == (
      f'print({tir_data.expression(p)})')
  assert text.endswith(f'\n```output\n{p.answer}\n```\n\\boxed{{{p.answer}}}')


def test_output_blocks_are_masked_from_the_loss():
  tok = CharTokenizer()
  completion = 'A```py```\n```output\n42\n```\nB\n```output\n7'
  ex = pipeline.tokenize_pair('Q', completion, tok, max_len=99,
                              masked_blocks=[tir.OUTPUT_BLOCK])
  assert tok.decode(ex['tokens'].tolist()) == '<bos>Q' + completion + '<eos>'
  mask = ''.join(map(str, ex['loss_mask'].tolist()))
  # bos, Q | 'A```py```' | block '\n```output\n42\n```\n' | 'B' | an
  # unclosed block to the end | eos.
  assert mask == ('00' + '1' * 9 + '0' * 18 + '1' + '0' * 12 + '1')
  plain = pipeline.tokenize_pair('Q', completion, tok, max_len=99)
  assert plain['tokens'].tolist() == ex['tokens'].tolist()
  assert plain['loss_mask'].sum() == len(completion) + 1


def test_prompt_styles_and_final_answer():
  p = synthetic.Problem('q', ('68*55=3740', '3740-97=3643'), '3643', 68,
                        ('*', '-'), (55, 97), (3740, 3643), None)
  assert tir_data.prompt(p, 'expression') == 'Compute (68*55)-97.\n'
  with pytest.raises(ValueError, match='prompt style'):
    tir_data.prompt(p, 'latex')
  pal = tir_data.tool_solution(p, boxed=False)
  assert pal == '```python\nprint((68*55)-97)\n```\n```output\n3643\n```\n'
  assert tir_data.final_answer(pal) == '3643'
  assert tir_data.final_answer(pal + '\\boxed{12}') == '12'
  assert tir_data.final_answer('no tool, no box') is None
