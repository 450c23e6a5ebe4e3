"""The TIR / hint loop on a scripted model, bad code, and the KV cache."""

import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.data.tokenizer import DEFAULT_CHARS, CharTokenizer
from jaxreason.models.transformer import (Transformer, TransformerConfig,
                                          abstract_params)
from jaxreason.reasoning import tir
from jaxreason.reasoning.hints import HintConfig

from tir_testlib import FakeResult, ScriptedLM, eval_executor

CODE = '```python\nprint({})\n```'


def _loop(scripts, cfg, executor=eval_executor, prompts=None):
  lm = ScriptedLM(scripts, tir.loop_stop_strings(cfg.tools, cfg.hints))
  prompts = prompts or [f'Q{i}\n' for i in range(len(scripts))]
  return lm, tir.run(lm, prompts, cfg, executor)


def test_outputs_are_appended_and_the_answer_follows():
  script = 'Compute.\n' + CODE.format('123*456') + '\\boxed{56088}'
  lm, (row,) = _loop([script], tir.LoopConfig(max_new_tokens=200))
  assert row.text == ('Compute.\n```python\nprint(123*456)\n```'
                      '\n```output\n56088\n```\n\\boxed{56088}')
  assert row.num_calls == 1 and row.statuses == ('ok',)
  assert row.calls[0].code == 'print(123*456)'
  assert row.finish == 'eos'
  assert row.num_generated == len(script) + 1  # Plus the EOS token.
  assert lm.extended == [['\n```output\n56088\n```\n']]
  assert [k for _, k in row.segments] == ['model', 'output', 'model']


def test_the_loop_stops_at_the_call_limit():
  script = ''.join(CODE.format(f'{k}+{k}') + '\nnext\n' for k in range(1, 6))
  other = CODE.format('7*6') + 'done'
  cfg = tir.LoopConfig(max_new_tokens=1000, tools=tir.ToolConfig(max_calls=2))
  lm, (row, row2) = _loop([script, other], cfg)
  assert row.num_calls == 2 and row.finish == 'call_limit'
  assert [c.output for c in row.calls] == ['2', '4']
  assert row.text.count('```output') == 2
  # The third block was written (that ended the row) but never ran.
  assert row.text.endswith(CODE.format('3+3'))
  assert len(lm.extended[0]) == 2
  # The other row went its own way: one call, then EOS.
  assert row2.num_calls == 1 and row2.finish == 'eos'
  assert row2.text.endswith('```output\n42\n```\ndone')


def test_zero_calls_and_no_tools():
  script = CODE.format('1+1') + 'x'
  cfg = tir.LoopConfig(max_new_tokens=100, tools=tir.ToolConfig(max_calls=0))
  _, (row,) = _loop([script], cfg)
  assert row.finish == 'call_limit' and row.num_calls == 0
  off = tir.LoopConfig(max_new_tokens=100,
                       tools=tir.ToolConfig(enabled=False))
  lm, (row,) = _loop([script], off, executor=None)
  assert row.text == script and row.finish == 'eos' and lm.decode_calls == 1


def test_the_token_budget_ends_a_row():
  script = 'a' * 50
  _, (row,) = _loop([script], tir.LoopConfig(max_new_tokens=20))
  assert row.finish == 'length' and row.num_generated == 20
  assert row.text == 'a' * 20


def _subprocess_executor(code, *, timeout_s, memory_mb):
  """A plain `python -c` (no isolation): the reference for statuses."""
  del memory_mb
  try:
    res = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=timeout_s, check=False)
  except subprocess.TimeoutExpired as e:
    out = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or ''
    return FakeResult(out, '', -9, 'timeout')
  return FakeResult(res.stdout, res.stderr, res.returncode,
                    'ok' if res.returncode == 0 else 'error')


@pytest.mark.parametrize('executor', [_subprocess_executor,
                                     tir.default_executor],
                         ids=lambda e: e.__module__ + '.' + e.__name__)
def test_bad_code_gives_a_status_and_truncated_output(executor):
  scripts = [
      '```python\nprint(1 +\n```ok',  # Does not parse.
      '```python\nwhile True: pass\n```ok',  # Never ends.
      '```python\nprint("x" * 3_000_000)\n```ok',  # Megabytes of output.
      '```python\nprint(1/0)\n```ok',
  ]
  cfg = tir.LoopConfig(max_new_tokens=100, tools=tir.ToolConfig(
      timeout_s=1.0, max_output_chars=64))
  _, rows = _loop(scripts, cfg, executor=executor)
  for r in rows:
    assert r.finish == 'eos' and r.num_calls == 1 and r.text.endswith('```\nok')
  syntax, loop, big, zero = (r.calls[0] for r in rows)
  assert syntax.status == 'error' and 'SyntaxError' in syntax.output
  assert loop.status == 'timeout' and 'TimeoutError' in loop.output
  assert big.status in ('ok', 'output_limit')
  assert big.output.startswith('x' * 64)
  assert 'more characters]' in big.output and len(big.output) < 120
  assert zero.status == 'error'
  assert zero.output.endswith('ZeroDivisionError: division by zero')
  assert rows[2].text.count('x') < 100


def test_a_raising_executor_is_an_error_status():
  def broken(code, **kw):
    raise OSError('no process for you')
  _, (row,) = _loop([CODE.format(1) + 'end'], tir.LoopConfig(50),
                    executor=broken)
  assert row.statuses == ('error',) and row.finish == 'eos'
  assert row.calls[0].output == 'OSError: no process for you'


def test_output_body_and_closed_code():
  body = tir.output_body(FakeResult('a' * 40, '', 0, 'ok'), max_chars=16,
                         timeout_s=1)
  assert body == 'a' * 16 + '\n... [24 more characters]'
  assert tir.output_body(FakeResult('', '', 0, 'memory'), max_chars=99,
                         timeout_s=1).startswith('MemoryError')
  assert tir.closed_code('x\n```python\nprint(2)\n```') == 'print(2)'
  assert tir.closed_code('x\n```') is None  # An opening fence.
  assert tir.closed_code('```python\na\n```\n```output\n1\n```') is None


def test_stop_hints_replace_eos_until_the_hint_budget():
  hints = HintConfig(stop_hints=('Wait, maybe using Python here is a good '
                                 'idea.', 'Check again.'), max_hints=2)
  cfg = tir.LoopConfig(max_new_tokens=100, hints=hints)
  lm, (row,) = _loop(['The answer is 7.'], cfg)
  assert row.hints == (
      '\nWait, maybe using Python here is a good idea.\n', '\nCheck again.\n')
  assert row.text == ('The answer is 7.\nWait, maybe using Python here is a '
                      'good idea.\n\nCheck again.\n')
  assert lm.rewound == [2]  # Two EOS tokens taken back out, the third kept.
  assert row.finish == 'eos'
  assert row.num_generated == len('The answer is 7.') + 3


def test_word_hints_follow_trigger_words():
  hints = HintConfig(words=('Wait', 'Alternatively'),
                     word_hints=(', maybe using Python here is a good idea.',),
                     max_hints=3)
  script = ('So 3. Wait, no. Alternatively 4. Wait 5. Wait 6.')
  cfg = tir.LoopConfig(max_new_tokens=200, hints=hints)
  lm, (row,) = _loop([script], cfg)
  h = ', maybe using Python here is a good idea.'
  assert row.text == (f'So 3. Wait{h}, no. Alternatively{h} 4. Wait{h} 5. '
                      'Wait 6.')
  assert len(row.hints) == 3 and lm.rewound == [0]


def test_hints_need_room_in_the_budget():
  hints = HintConfig(stop_hints=('Hm.',), max_hints=5, min_tokens_left=12)
  _, (row,) = _loop(['x' * 15], tir.LoopConfig(max_new_tokens=30,
                                               hints=hints))
  # Each EOS (taken back or not) counts: after it 14, 13, 12, 11 tokens are
  # left, so three hints and then the row ends.
  assert row.hints == ('\nHm.\n',) * 3 and row.finish == 'eos'
  assert row.num_generated == 15 + 4
  _, (row,) = _loop(['x' * 25], tir.LoopConfig(max_new_tokens=30,
                                               hints=hints))
  assert row.hints == () and row.finish == 'eos'


# The KV-cached model ----------------------------------------------------------

TOK = CharTokenizer()
CONFIG = TransformerConfig.from_preset('tiny', vocab_size=TOK.vocab_size)


@pytest.fixture(scope='module')
def params():
  rng = np.random.default_rng(0)
  shapes = nn.unbox(abstract_params(CONFIG))
  def one(path, x):
    noise = rng.normal(0.0, 0.25, x.shape).astype(np.float32)
    return jnp.asarray(1.0 + noise if path[-1].key == 'scale' else noise)
  return jax.tree_util.tree_map_with_path(one, shapes)


@jax.jit
def _forward(params, tokens):
  return Transformer(CONFIG).apply({'params': params}, tokens)


def _full_logits(params, tokens):
  """Cache-free forward of one sequence [T, V] (right-padded to 64)."""
  padded = np.zeros((1, 64), np.int32)
  padded[0, :len(tokens)] = tokens
  return np.asarray(_forward(params, jnp.asarray(padded))[0, :len(tokens)])


def test_word_hints_continue_from_the_cache_like_a_full_forward(params):
  # Every character is a trigger word, so each token is followed by a hint
  # (two per row) and then decoding goes on one token per call.
  hints = HintConfig(words=tuple(DEFAULT_CHARS), word_hints=('Hm.', 'Ok!'),
                     max_hints=2)
  cfg = tir.LoopConfig(max_new_tokens=8, hints=hints,
                       tools=tir.ToolConfig(enabled=False))
  lm = tir.SamplerLM(CONFIG, params, TOK, cache_size=64, eos_ids=(),
                     stop_strings=tir.loop_stop_strings(cfg.tools, hints))
  prompts = ['Start at 3.', 'Go 9']
  rows = tir.run(lm, prompts, cfg, executor=None)
  hint_tokens = 0
  for b, (prompt, row) in enumerate(zip(prompts, rows)):
    assert row.num_generated == 8 and row.finish == 'length'
    assert [k for _, k in row.segments[:4]] == ['model', 'hint'] * 2
    tokens = TOK.encode(prompt, add_bos=True)
    generated = []  # (position, token) of every generated token.
    for text, kind in row.segments:
      ids = TOK.encode(text)
      if kind == 'model':
        generated += [(len(tokens) + k, t) for k, t in enumerate(ids)]
      else:
        hint_tokens += len(ids)
      tokens += ids
    assert len(generated) == 8
    logits = _full_logits(params, tokens)
    for pos, token in generated:  # Greedy: each is the argmax before it.
      assert int(np.argmax(logits[pos - 1])) == token, (b, pos)
    np.testing.assert_allclose(np.asarray(lm.state.logits[b]), logits[-1],
                               atol=1e-4)
    assert int(lm.state.lengths[b]) == len(tokens)
  # One prefill of the prompts; after that only the hints were encoded.
  assert lm.stats['prefill_calls'] == 1
  assert lm.stats['prefill_tokens'] == sum(len(p) + 1 for p in prompts)
  assert lm.stats['extend_tokens'] == hint_tokens == 2 * 6


def test_stop_hints_take_the_eos_back_out_of_the_cache(params):
  # Every token is an EOS: the first two are taken back and replaced by
  # hints, the third ends the row.
  hints = HintConfig(stop_hints=('Hm.', 'Ok!'), max_hints=2, separator=' ')
  cfg = tir.LoopConfig(max_new_tokens=8, hints=hints,
                       tools=tir.ToolConfig(enabled=False))
  lm = tir.SamplerLM(CONFIG, params, TOK, cache_size=64,
                     eos_ids=tuple(range(TOK.vocab_size)))
  (row,) = tir.run(lm, ['Start at 3.'], cfg, executor=None)
  assert row.text == ' Hm.  Ok! ' and row.finish == 'eos'
  assert row.num_generated == 3
  context = TOK.encode('Start at 3.', add_bos=True) + TOK.encode(row.text)
  last = int(np.argmax(_full_logits(params, context)[-1]))
  want = _full_logits(params, context + [last])[-1]
  assert int(lm.state.lengths[0]) == len(context) + 1
  np.testing.assert_allclose(np.asarray(lm.state.logits[0]), want, atol=1e-4)
