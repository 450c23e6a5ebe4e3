r"""math_eval: metrics from handmade graded problems, budgets, prompts, grading."""

import math
import pathlib

import jax
import ml_collections
import pytest

from jaxreason.data import sources
from jaxreason.data import synthetic
from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.evals import math_eval
from jaxreason.evals import prompts
from jaxreason.evals import report
from jaxreason.file_modules import load_config
from jaxreason.models import hf
from jaxreason.models.transformer import TransformerConfig, init_params
from jaxreason.search import budget

REPO = pathlib.Path(__file__).resolve().parents[2]
CFG = TransformerConfig(vocab_size=104, num_layers=1, embed_dim=16,
                        mlp_dim=32, num_heads=2, num_kv_heads=1)


def _problem(answers, gold, **extra):
  graded = math_eval.grade_problem(answers, ['eos'] * len(answers), gold,
                                   {'extract': 'robust', 'match': 'grader'})
  return {'prompt_tokens': 10, 'gen_tokens': [5] * len(answers),
          'finish': ['eos'] * len(answers), **graded, **extra}


def test_curve_ns():
  assert math_eval.curve_ns(1) == [1]
  assert math_eval.curve_ns(8) == [1, 2, 4, 8]
  assert math_eval.curve_ns(6) == [1, 2, 4, 6]


def test_metrics_on_handmade_problems():
  # Boxed answers; gold 1/2: sample 0 wrong, then three forms of a half.
  a = _problem(['\\boxed{3}', '\\boxed{0.5}', '\\boxed{3}', '\\boxed{1/2}'],
               '\\frac{1}{2}', level=1, subject='Algebra')
  # Gold 7: right first, then the majority is wrong (2 x 5).
  b = _problem(['\\boxed{7}', 'so 5', 'The answer is 5.', 'no idea'], '7',
               level=2, subject='Algebra')
  assert a['correct'] == [False, True, False, True]
  assert b['correct'] == [True, False, False, False]
  assert b['extracted'][3] is None and b['classes'] == [0, 1, 1, None]
  p1 = math_eval.point([a, b], 1, CFG)
  assert p1['pass'] == pytest.approx((0.5 + 0.25) / 2)
  assert (p1['pass_first'], p1['maj'], p1['avg']) == (0.5, 0.5, 0.5)
  p2 = math_eval.point([a, b], 2)
  # maj@2 of a: a 1-1 tie, the first class (3) wins: wrong. b: 7 first: right.
  assert (p2['maj'], p2['pass_first'], p2['avg']) == (0.5, 1.0, 0.5)
  exact = 1 - math.comb(2, 2) / math.comb(4, 2)  # a: c=2; b: c=1.
  assert p2['pass'] == pytest.approx((exact + 0.5) / 2)
  p4 = math_eval.point([a, b], 4)
  # a: the half class has 2 votes to 3's 2, 3 came first -> wrong; b: 5 wins.
  assert (p4['maj'], p4['pass'], p4['avg']) == (0.0, 1.0, 0.375)
  s = math_eval.summarize([a, b], CFG)
  assert s['metrics']['maj@4'] == 0.0 and s['metrics']['avg@1'] == 0.5
  assert s['by_level'] == {
      '1': {'num_problems': 1, 'pass@1': 0.5, 'avg@4': 0.5, 'maj@4': 0.0,
            'pass@4': 1.0},
      '2': {'num_problems': 1, 'pass@1': 0.25, 'avg@4': 0.25, 'maj@4': 0.0,
            'pass@4': 1.0}}
  assert s['by_subject']['Algebra']['num_problems'] == 2
  assert s['no_answer'] == 1 / 8
  md = report.markdown({**s, 'benchmark': 'handmade'})
  assert '| 4 | 100.0 | 100.0 | 0.0 | 37.5 |' in md


def test_majority_of_equivalent_forms_is_right():
  a = _problem(['\\boxed{3}', '\\boxed{0.5}', '\\boxed{\\frac12}',
                '\\boxed{1/2}'], '\\frac{1}{2}')
  assert math_eval.point([a], 4)['maj'] == 1.0
  assert math_eval.point([a], 1)['maj'] == 0.0


def test_budget_adds_up():
  b = math_eval.problem_budget(CFG, 10, [3, 5])
  assert (b.prompt_tokens, b.policy_tokens, b.tokens) == (10, 8, 18)
  expected = (budget.forward_flops(CFG, 10, 5.5) +
              budget.forward_flops(CFG, 3, 12.0) +
              budget.forward_flops(CFG, 5, 13.0))
  assert b.flops == pytest.approx(expected)
  # The prompt is encoded once: n samples add only their own tokens.
  one = math_eval.problem_budget(CFG, 10, [3])
  assert b.flops - one.flops == pytest.approx(
      budget.forward_flops(CFG, 5, 13.0))
  p = {'prompt_tokens': 10, 'gen_tokens': [3, 5], 'correct': [True, False],
       'classes': [0, 1]}
  pts = [math_eval.point([p], k, CFG) for k in (1, 2)]
  assert [x['tokens'] for x in pts] == [3, 8]
  assert [x['flops'] for x in pts] == pytest.approx([one.flops, b.flops])


def test_truncated_samples_and_extractors():
  texts = ['so \\boxed{4}', 'x \\boxed{4}', 'the answer is 4']
  finish = ['eos', 'length', 'eos']
  g = math_eval.grade_problem(texts, finish, '4',
                              {'extract': 'robust', 'match': 'grader',
                               'grade_truncated': False})
  assert g['extracted'] == ['4', None, '4'] and g['correct'] == [
      True, False, True]
  g = math_eval.grade_problem(texts, finish, '4',
                              {'extract': 'boxed', 'match': 'exact'})
  assert g['extracted'] == ['4', '4', None]
  with pytest.raises(ValueError, match='grading.extract'):
    math_eval.extractor('last')


def test_prompts():
  tok = CharTokenizer()
  chat = prompts.build_prompt('What is 1+1?', tok, {
      'chat': True, 'system': prompts.QWEN_MATH_SYSTEM, 'user': '{problem}'})
  assert chat == (
      '<|im_start|>system\nPlease reason step by step, and put your final '
      'answer within \\boxed{}.<|im_end|>\n<|im_start|>user\nWhat is 1+1?'
      '<|im_end|>\n<|im_start|>assistant\n')
  assert prompts.build_prompt('Q', tok, {'chat': True, 'system': ''}) == (
      '<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n')
  # Raw prompts of the synthetic task are what its models were trained on.
  _, held = sources.synthetic_splits(dict(num_steps=2, modulus=10), 0, 3, 0)
  for p in held:
    assert prompts.build_prompt(p.question, tok, {'chat': False}) == (
        synthetic.format_prompt(p))
  ids = prompts.encode_prompt('ab', tok)
  assert ids[0] == tok.bos_id and tok.decode(ids[1:]) == 'ab'


def test_samples_share_the_prompt_and_greedy_samples_agree():
  tok = CharTokenizer()
  params = init_params(CFG, jax.random.key(0))
  config = ml_collections.ConfigDict(dict(
      prompt=dict(chat=False, raw='{problem}='), n=3, max_new_tokens=4,
      seed=0, batch_prompts=2, temperature=0.0, top_p=1.0,
      grading=dict(extract='robust', match='grader')))
  records = [{'id': 'a', 'problem': '1+1', 'answer': '2', 'level': 1},
             {'id': 'b', 'problem': '2+2+2', 'answer': '6'},
             {'id': 'c', 'problem': '3', 'answer': '3'}]
  rows = math_eval.sample_problems(params, CFG, tok, records, config)
  assert [r['id'] for r in rows] == ['a', 'b', 'c']
  assert [r['prompt_tokens'] for r in rows] == [5, 7, 3]  # bos + text + '='.
  assert rows[0]['level'] == 1 and 'level' not in rows[1]
  for r in rows:  # Greedy: the three samples of one prompt are identical.
    assert len(set(r['completions'])) == 1 and len(r['gen_tokens']) == 3
    assert all(1 <= g <= 4 for g in r['gen_tokens'])
  with pytest.raises(ValueError, match='problem x: .*not in the vocabulary'):
    math_eval.sample_problems(params, CFG, tok, [
        {'id': 'x', 'problem': 'caf\u00e9', 'answer': '1'}], config)
  config.unencodable = 'skip'
  rows = math_eval.sample_problems(params, CFG, tok, [
      {'id': 'x', 'problem': 'caf\u00e9', 'answer': '1'}] + records[1:2],
                                   config)  # Same shapes: no recompilation.
  assert [r['id'] for r in rows] == ['b']


def test_run_from_a_hugging_face_folder(tmp_path):
  tok = CharTokenizer()
  cfg = CFG.replace(qkv_bias=True)  # Qwen2 export has q/k/v biases.
  params = init_params(cfg, jax.random.key(1))
  hf.save_checkpoint(str(tmp_path / 'model'), cfg, params)
  tok.save(str(tmp_path / 'model'))
  config = load_config(REPO / 'configs' / 'math_eval' / 'synthetic.py',
                       'debug')
  config.policy = str(tmp_path / 'model')
  config.num_problems = 2
  result = math_eval.run(config, str(tmp_path / 'out'))
  assert result['policy'] == config.policy
  assert result['model']['params'] == cfg.num_params()
  assert result['model']['non_embedding_params'] == (
      budget.non_embedding_params(cfg))
  assert result['num_problems'] == 2 and result['n'] == config.n
  assert (tmp_path / 'out' / 'scaling_flops.png').exists()


def test_chat_prompts_stop_at_im_end():
  tok = CharTokenizer()
  assert math_eval.stop_ids(CFG, tok, chat=False) == (tok.eos_id,)
  assert math_eval.stop_ids(CFG, tok, chat=True) == (
      tok.eos_id, tok.token_to_id('<|im_end|>'))
  assert math_eval.stop_ids(CFG.replace(eos_token_id=7), tok, False) == (2, 7)
