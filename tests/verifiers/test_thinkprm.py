"""ThinkPRM scoring: P(yes) against an independent forward pass, scaling
under a token budget, and the aggregation of chains into a Judgement."""

import jax
import numpy as np
import pytest

from jaxreason.data import synthetic
from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.models.transformer import init_params
from jaxreason.sampling import score
from jaxreason.train import run_config
from jaxreason.verifiers import thinkprm_data as td
from jaxreason.verifiers.thinkprm import _Chain
from jaxreason.verifiers.thinkprm import ThinkPRM

TOK = CharTokenizer()
CONFIG = run_config.model_config_from(
    dict(vocab_size=0, num_layers=1, embed_dim=32, mlp_dim=64, num_heads=4,
         num_kv_heads=2, qkv_bias=True, tie_embeddings=True), TOK.vocab_size)
TASK = synthetic.ArithmeticConfig(num_steps=2, word_problem=False)


@pytest.fixture(scope='module')
def params():
  return init_params(CONFIG, jax.random.key(0))


@pytest.fixture(scope='module')
def batch():
  problems = synthetic.generate_dataset(3, 3, TASK)
  sols = td.labelled_solutions(problems, np.random.default_rng(0))
  return [s.question for s in sols], [list(s.steps) for s in sols]


def _direct_p_yes(params, prompt, chain_tokens):
  """P(yes) from one forward pass over the whole text (no cache)."""
  ctx = TOK.encode(prompt, add_bos=True) + list(chain_tokens)
  yes, no = TOK.encode(td.YES), TOK.encode(td.NO)
  lp_yes, lp_no = score(params, CONFIG, [ctx, ctx], [yes, no])
  a, b = np.exp(lp_yes.mean()), np.exp(lp_no.mean())
  return a / (a + b)


@pytest.mark.parametrize('num_chains,num_rounds', [(1, 1), (2, 2)])
def test_p_yes_equals_direct_logprob(params, batch, num_chains, num_rounds):
  questions, steps = batch
  prm = ThinkPRM(CONFIG, params, TOK, num_chains=num_chains,
                 num_rounds=num_rounds, max_chain_tokens=12,
                 temperature=1.0, cache_size=256, batch_size=2)
  js = prm.judge(questions, steps)
  assert len(js) == 3
  for q, s, j in zip(questions, steps, js):
    prompt = td.verifier_prompt(q, s)
    assert len(j.info['p_yes_chains']) == num_chains
    for p, toks, text in zip(j.info['p_yes_chains'], j.info['chain_tokens'],
                             j.info['chains']):
      assert 0.0 < p < 1.0
      assert text.endswith(td.QUESTION)
      np.testing.assert_allclose(p, _direct_p_yes(params, prompt, toks),
                                 atol=2e-5)
      if num_rounds == 2:
        assert td.VERIFY_AGAIN.strip() in text
    # Prompt once, then every chain's tokens and the scored yes / no.
    assert j.tokens == len(TOK.encode(prompt, add_bos=True)) + sum(
        len(t) + len(td.YES) + len(td.NO) for t in j.info['chain_tokens'])
    # A random model writes no verdicts: unknown, recorded, no crash.
    assert j.step_scores is None and 'error' in j.info


def test_token_budget_caps_generated_tokens(params, batch):
  questions, steps = batch
  prm = ThinkPRM(CONFIG, params, TOK, num_chains=2, num_rounds=3,
                 max_chain_tokens=16, token_budget=20, temperature=1.0,
                 cache_size=320)
  for j in prm.judge(questions, steps):
    assert j.info['generated_tokens'] <= 20
    # Random text rarely stops early: each chain spends its 10 tokens.
    assert j.info['generated_tokens'] > 0


def test_prompt_too_long_is_reported_not_raised(params):
  prm = ThinkPRM(CONFIG, params, TOK, cache_size=256, max_chain_tokens=4)
  q = 'Start at 1. ' + 'Add 1, ' * 35 + 'then add 1.'
  j1, j2 = prm.judge([q, 'Start at 2. Add 3.'], [['1+1=2'], ['2+3=5']])
  assert j1.step_scores is None and 'does not fit' in j1.info['error']
  assert 'p_yes' in j2.info


def test_aggregation_over_chains(params):
  prm = ThinkPRM(CONFIG, params, TOK, num_chains=3)
  chains = [
      'Step 0: a \\boxed{correct}\nStep 1: b \\boxed{incorrect}\n'
      'First error: \\boxed{1}',
      'Step 0: a \\boxed{correct}\nStep 1: b \\boxed{correct}\n'
      'Step 2: c \\boxed{correct}\nFirst error: \\boxed{-1}',
      'Step 0: a \\boxed{incorrect}\nFirst error: \\boxed{1}',
  ]
  j = prm._judgement(3, 10, [(_Chain(text=t, generated=5), p)
                             for t, p in zip(chains, (0.2, 0.9, 0.1))])
  np.testing.assert_allclose(j.step_scores[:2], [2 / 3, 1 / 2])
  assert j.step_scores[2] == 1.0  # Only the second chain judged step 2.
  assert j.first_error == 1  # Majority of (1, -1, 1).
  assert j.info['p_yes'] == pytest.approx(0.4)
  assert j.info['unknown_steps'] == 3  # (step 2 twice, step 1 once)
  none = prm._judgement(2, 10, [(_Chain(text='garbage'), 0.5)] * 3)
  assert none.step_scores is None and none.first_error is None
  nan = prm._judgement(2, 10, [(_Chain(text='Step 0 \\boxed{correct}'), .5)])
  assert nan.step_scores[0] == 1.0 and np.isnan(nan.step_scores[1])
  assert nan.first_error is None
