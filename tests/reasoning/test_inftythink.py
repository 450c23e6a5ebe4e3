"""InftyThink: segmentation of handmade traces, instances, the bounded loop."""

import re

import jax
import ml_collections
import pytest

from jaxreason.data import synthetic
from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.models.transformer import TransformerConfig
from jaxreason.models.transformer import init_params
from jaxreason.reasoning import inftythink as infty
from jaxreason.recipes import inftythink as recipe
from jaxreason.sampling.cache import KVCache
from jaxreason.sampling.sampler import Sampler

# Segmentation -----------------------------------------------------------------


def test_paragraphs_merge_unless_upper_case():
  trace = ('First we add the tens.\n\nthen the units.\n\n12+30=42\n\n'
           'Next, check it.\n\n  \n\n(a remark)\n\nDone.\nStill done.')
  assert infty.split_paragraphs(trace) == [
      'First we add the tens.\n\nthen the units.\n\n12+30=42',
      'Next, check it.\n\n(a remark)',
      'Done.\nStill done.',  # A single newline does not split.
  ]


def test_first_paragraph_stands_even_in_lower_case():
  assert infty.split_paragraphs('so we start.\n\nthen go on.\n\nAnd stop.') == [
      'so we start.\n\nthen go on.', 'And stop.']
  assert infty.split_paragraphs('\n\n  \n') == []


def test_segments_keep_the_crossing_paragraph():
  paras = ['aaaa', 'bbbbbb', 'cc', 'dddddddddd', 'e']  # 4, 6, 2, 10, 1 chars
  # Joined with '\n\n' (2 chars): 'aaaa\n\nbbbbbb' is 12 >= 10.
  assert infty.fill_segments(paras, len, 10) == [
      'aaaa\n\nbbbbbb', 'cc\n\ndddddddddd', 'e']
  # Exactly eta closes the segment; one more char lets the next one in.
  assert infty.fill_segments(paras, len, 12) == [
      'aaaa\n\nbbbbbb', 'cc\n\ndddddddddd', 'e']
  assert infty.fill_segments(paras, len, 13) == [
      'aaaa\n\nbbbbbb\n\ncc', 'dddddddddd\n\ne']
  # Paragraphs at or over eta are segments of their own ('cc' reaches 2);
  # what is left at the end ('e') is the last segment; a huge eta, one.
  assert infty.fill_segments(paras, len, 2) == paras
  assert infty.fill_segments(paras, len, 3) == [
      'aaaa', 'bbbbbb', 'cc\n\ndddddddddd', 'e']
  assert infty.fill_segments(paras, len, 1000) == ['\n\n'.join(paras)]
  with pytest.raises(ValueError, match='eta'):
    infty.fill_segments(paras, len, 0)


def test_segments_count_tokens_not_characters():
  words = lambda s: len(s.split())
  paras = ['One two three.', 'Four five.', 'Six.', 'Seven eight nine ten.']
  assert infty.fill_segments(paras, words, 5) == [
      'One two three.\n\nFour five.', 'Six.\n\nSeven eight nine ten.']


# Instances --------------------------------------------------------------------


def test_instances_format_history_think_summary():
  trace = 'Add the tens.\n\nthat is 40.\n\nAdd the units.\n\nSo 42.'
  seen = []

  def summarise(question, previous, segment):
    seen.append((question, previous, segment))
    return f'S{len(seen)}'

  out = infty.build_instances('Q?', trace, '\\boxed{42}', summarise, len, 20)
  assert [i.record() for i in out] == [
      {'prompt': 'Q?\n',
       'completion': '<think>Add the tens.\n\nthat is 40.</think>\n'
                     '<summary>S1</summary>'},
      {'prompt': 'Q?\n<history>S1</history>\n',
       'completion': '<think>Add the units.\n\nSo 42.</think>\n\\boxed{42}'},
  ]
  assert seen == [('Q?', None, 'Add the tens.\n\nthat is 40.')]
  assert [(i.index, i.history, i.summary) for i in out] == [
      (0, None, 'S1'), (1, 'S1', None)]


def test_synthetic_instances_of_a_handmade_problem():
  # 3 +5 -2 *4 (mod 10): 8, 6, 4.
  p = synthetic.Problem(question='', steps=('3+5=8', '8-2=6', '6*4=4'),
                        answer='4', start=3, ops=('+', '-', '*'),
                        operands=(5, 2, 4), values=(8, 6, 4), modulus=10)
  q = 'Start at 3. Apply +5 -2 *4 in turn, mod 10.'
  assert infty.synthetic_question(p) == q
  # One step ('Apply +5.\n\nso 3+5=8.') is 20 characters.
  recs = [i.record() for i in infty.synthetic_instances(p, len, 20)]
  assert recs == [
      {'prompt': q + '\n',
       'completion': '<think>Apply +5.\n\nso 3+5=8.</think>\n'
                     '<summary>Value 8, left -2 *4.</summary>'},
      {'prompt': q + '\n<history>Value 8, left -2 *4.</history>\n',
       'completion': '<think>Apply -2.\n\nso 8-2=6.</think>\n'
                     '<summary>Value 6, left *4.</summary>'},
      {'prompt': q + '\n<history>Value 6, left *4.</history>\n',
       'completion': '<think>Apply *4.\n\nso 6*4=4.</think>\n'
                     '<summary>Value 4, left none.</summary>'},
      {'prompt': q + '\n<history>Value 4, left none.</history>\n',
       'completion': '<think>So the answer is 4.</think>\n\\boxed{4}'},
  ]
  # A budget of 21 takes a second step into the first segment.
  first = infty.synthetic_instances(p, len, 21)[0]
  assert first.summary == 'Value 6, left *4.'
  mono = infty.synthetic_monolithic(p)
  assert mono['completion'].count('\n\nso ') == 3
  assert mono['completion'].endswith('So the answer is 4.</think>\n\\boxed{4}')


def test_synthetic_summary_rejects_bad_input():
  with pytest.raises(ValueError, match='not a synthetic InftyThink question'):
    infty.synthetic_summary('What is 2+2?', None, '')
  with pytest.raises(ValueError, match='not a synthetic summary'):
    infty.synthetic_summary('Start at 1. Apply +1 in turn, mod 10.', 'hi', '')
  with pytest.raises(ValueError, match='2 steps in the segment, 1 left'):
    infty.synthetic_summary('Start at 1. Apply +1 in turn, mod 10.', None,
                            'so 1+1=2. so 2+1=3.')


def test_parse_turn():
  assert infty.parse_turn('<think>x</think>\n<summary>v 3</summary>') == (
      'summary', 'v 3')
  assert infty.parse_turn('<think>x</think>\n\\boxed{7}') == (
      'final', '\\boxed{7}')
  assert infty.parse_turn('<think>x, cut off') == ('malformed', None)
  assert infty.parse_turn('<think>x</think>\n<summary>v 3') == (
      'malformed', None)


# The iterative loop -----------------------------------------------------------

STEPS_PER_TURN = 2


def _oracle_turn(prompt: str) -> str:
  """A scripted model: the next STEPS_PER_TURN operations, then a summary.

  Its own arithmetic, independent of the module's trace and summariser.
  """
  q = re.match(r'Start at (\d+)\. Apply (.*) in turn, mod (\d+)\.', prompt)
  value, ops, mod = int(q.group(1)), q.group(2).split(), int(q.group(3))
  h = re.search(r'<history>Value (\d+), left (.*)\.</history>', prompt)
  if h:
    value, ops = int(h.group(1)), [] if h.group(2) == 'none' else (
        h.group(2).split())
  if not ops:
    return f'<think>Done.</think>\n\\boxed{{{value}}}'
  lines = []
  for op in ops[:STEPS_PER_TURN]:
    b = int(op[1:])
    new = {'+': value + b, '-': value - b, '*': value * b}[op[0]] % mod
    lines.append(f'Apply {op} to {value}.\n\nthat gives {value}{op}={new}.')
    value = new
  left = ' '.join(ops[STEPS_PER_TURN:]) or 'none'
  return (f'<think>{chr(10).join(lines)}</think>\n'
          f'<summary>Value {value}, left {left}.</summary>')


class ScriptedTurns:
  """`TurnFn` of the oracle; tokens are characters plus BOS."""

  def __init__(self):
    self.prompts = []

  def __call__(self, prompts):
    self.prompts += prompts
    return [infty.Turn(text=(t := _oracle_turn(p)), prompt_tokens=len(p) + 1,
                       new_tokens=len(t), finish='stop') for p in prompts]


def test_loop_solves_long_chains_with_bounded_context():
  cfg = synthetic.ArithmeticConfig(num_steps=20, word_problem=False)
  problems = synthetic.generate_dataset(0, 6, cfg)
  questions = [infty.synthetic_question(p) for p in problems]
  turns = ScriptedTurns()
  trajs = infty.run_inftythink(turns, questions, max_iterations=20)
  assert [t.answer for t in trajs] == [p.answer for p in problems]
  assert all(t.status == 'final' for t in trajs)
  assert [len(t.turns) for t in trajs] == [11] * 6  # 20 / 2 steps + final.
  for q, t in zip(questions, trajs):
    # Bound: question + the longest summary twice (history in, summary out)
    # + 2 steps of at most 40 characters + tags; independent of chain length.
    bound = len(q) + 2 * len(f'Value 0, left {q}.') + 2 * 40 + 60
    assert t.peak_context <= bound
    assert t.generated_tokens > bound  # The reasoning does not fit at once.
    assert t.processed_tokens > t.peak_context * 5
  # No prompt holds an earlier segment: only the question and one summary.
  assert not any('that gives' in p for p in turns.prompts)
  assert max(p.count('<history>') for p in turns.prompts) == 1


def test_loop_stops_at_max_iterations_and_on_malformed_turns():
  cfg = synthetic.ArithmeticConfig(num_steps=9, word_problem=False)
  q = infty.synthetic_question(synthetic.generate_dataset(1, 1, cfg)[0])
  (t,) = infty.run_inftythink(ScriptedTurns(), [q], max_iterations=3)
  assert (t.status, len(t.turns), len(t.summaries), t.answer) == (
      'max_iterations', 3, 3, None)
  cut = lambda ps: [infty.Turn('<think>Apply +1 to', len(p), 5, 'length')
                    for p in ps]
  (t,) = infty.run_inftythink(cut, [q], max_iterations=3)
  assert (t.status, len(t.turns), t.answer) == ('malformed', 1, None)
  with pytest.raises(ValueError, match='max_iterations'):
    infty.run_inftythink(cut, [q], max_iterations=0)


def _tiny(vocab):
  cfg = TransformerConfig(vocab_size=vocab, num_layers=1, embed_dim=16,
                          mlp_dim=32, num_heads=2, num_kv_heads=1,
                          max_position_embeddings=256)
  return cfg, init_params(cfg, jax.random.key(0))


def test_sampler_turns_stay_inside_a_fresh_cache():
  tok = CharTokenizer()
  cfg, params = _tiny(tok.vocab_size)
  sampler = Sampler(cfg, cache_size=64, tokenizer=tok,
                    stop_strings=(infty.SUMMARY[1],), block_size=64)
  turns = infty.SamplerTurns(sampler, params, max_new_tokens=1000,
                             temperature=1.0, batch_size=2)
  prompts = ['Start at 1. Apply +2 in turn, mod 10.\n', 'Q\n', 'x' * 50]
  for _ in range(2):  # A second call starts from empty caches again.
    out = turns(prompts)
    assert [t.prompt_tokens for t in out] == [len(p) + 1 for p in prompts]
    assert all(0 < t.context_tokens <= 64 for t in out)
    assert out[1].new_tokens == 64 - 3 or out[1].finish != 'length'
  with pytest.raises(ValueError, match='leaves no room'):
    turns(['y' * 63])
  with pytest.raises(ValueError, match='stop_strings'):
    infty.SamplerTurns(Sampler(cfg, cache_size=64, tokenizer=tok), params,
                       max_new_tokens=8)


def test_kv_bytes_per_token_matches_the_cache_arrays():
  cfg, _ = _tiny(100)
  cache = KVCache.init(cfg, 1, 32)
  assert infty.kv_bytes_per_token(cfg) * 32 == cache.k.nbytes + cache.v.nbytes


def test_recipe_rejects_a_context_shorter_than_its_records():
  c = ml_collections.ConfigDict(dict(
      mode='inftythink', eta=40, seq_len=64,
      task=dict(num_steps=3, modulus=10, word_problem=False)))
  p = synthetic.generate_dataset(0, 2, synthetic.ArithmeticConfig(
      num_steps=3, word_problem=False))
  with pytest.raises(ValueError, match='config.seq_len=64 is shorter'):
    recipe.training_records(c, p, CharTokenizer())
  c.seq_len = 192
  assert len(recipe.training_records(c, p, CharTokenizer())) >= 4
  c.mode = 'chunked'
  with pytest.raises(ValueError, match="config.mode='chunked'"):
    recipe.training_records(c, p, CharTokenizer())
