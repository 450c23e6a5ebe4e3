"""LMGenerator: step-wise continuation from the KV cache, on a tiny model."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.data import synthetic
from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.models.transformer import abstract_params, TransformerConfig
from jaxreason.sampling import Sampler
from jaxreason.search import beam, best_of_n, dvts
from jaxreason.search.generator import LMGenerator
from jaxreason.verifiers import OracleVerifier


TOK = CharTokenizer()
CONFIG = TransformerConfig.from_preset('tiny', vocab_size=TOK.vocab_size)
PROMPTS = ['Start at 3. Add 4. Answer mod 10.\n', 'Hi\n', 'Start at 9.\n']


@pytest.fixture(scope='module')
def params():
  """Random O(0.25) weights (NumPy: a jitted init compiles for seconds)."""
  rng = np.random.default_rng(1)
  def one(path, x):
    noise = rng.normal(0.0, 0.25, x.shape).astype(np.float32)
    return jnp.asarray(1.0 + noise if path[-1].key == 'scale' else noise)
  return jax.tree_util.tree_map_with_path(
      one, nn.unbox(abstract_params(CONFIG)))


def _gen(params, **kw):
  kw = dict(cache_size=96, max_new_tokens=24, max_step_tokens=5) | kw
  return LMGenerator(CONFIG, params, TOK, **kw)


def test_steps_continue_the_cache_exactly(params):
  gen = _gen(params)
  costs = gen.start(PROMPTS)
  assert [c[0] for c in costs] == [len(TOK.encode(p, add_bos=True))
                                   for p in PROMPTS]
  rows = [0, 0, 1, 2]
  gen.select(rows)  # Row 0 forked: both copies continue alike at T=0.
  texts, tokens, going = [''] * 4, [0] * 4, [True] * 4
  for _ in range(10):
    saved = gen.save()  # A lookahead that is undone changes nothing.
    gen.generate('step', 0.0, going)
    gen.restore(saved)
    for i, piece in enumerate(gen.generate('step', 0.0, going)):
      if going[i]:
        texts[i] += piece.text
        tokens[i] += piece.num_tokens
        going[i] = piece.finish == 'stop'
    if not any(going):
      break
  whole = Sampler(CONFIG, cache_size=96, tokenizer=TOK).generate(
      params, [TOK.encode(p, add_bos=True) for p in PROMPTS],
      max_new_tokens=24, temperature=0.0)
  for i, r in enumerate(rows):
    assert texts[i] == whole[r][0].text, i
    assert tokens[i] == len(whole[r][0].tokens)
  assert texts[0] == texts[1]
  # 'end': the same text in one call (steps in a row inside the generator).
  gen = _gen(params)
  gen.start(PROMPTS)
  gen.select(rows)
  pieces = gen.generate('end', 0.0)
  assert [p.text for p in pieces] == texts
  assert [p.num_tokens for p in pieces] == tokens


def test_methods_run_on_the_model_with_consistent_budgets(params):
  problems = synthetic.generate_dataset(
      0, 2, synthetic.ArithmeticConfig(word_problem=False))  # 8 rows.
  questions = [p.question for p in problems]
  prompts = [synthetic.format_prompt(p) for p in problems]
  verifier = OracleVerifier()
  prompt_tokens = [len(TOK.encode(p, add_bos=True)) for p in prompts]
  runs = {
      'best': best_of_n.best_of_n(_gen(params), verifier, questions, prompts,
                                  4),
      'greedy': best_of_n.greedy(_gen(params), questions, prompts),
      'beam': beam.beam_search(_gen(params), verifier, questions, prompts,
                               4, width=2, lookahead=1, max_iterations=3),
      'dvts': dvts.dvts(_gen(params), verifier, questions, prompts, 4,
                        width=2, max_iterations=3),
  }
  for name, results in runs.items():
    for r, pt in zip(results, prompt_tokens):
      assert r.budget.prompt_tokens == pt, name
      assert r.budget.policy_tokens >= sum(c.tokens for c in r.candidates
                                           if name != 'dvts')
      assert r.budget.policy_flops > 0
      assert r.answer is None or any(c.finished and c.answer == r.answer
                                     for c in r.candidates)
  for r in runs['best']:  # Whole samples: the budget is their tokens.
    assert r.budget.policy_tokens == sum(c.tokens for c in r.candidates)
    assert len(r.candidates) == 4
  assert np.all([len(r.candidates) == 1 for r in runs['greedy']])
