"""LLM-as-a-judge: ThinkPRM's prompt and scoring, zero-shot."""

import jax
import numpy as np

from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.models.transformer import init_params
from jaxreason.sampling import score
from jaxreason.train import run_config
from jaxreason.verifiers import first_error_predictions
from jaxreason.verifiers import JUDGE_INSTRUCTION
from jaxreason.verifiers import Judgement
from jaxreason.verifiers import LLMJudge
from jaxreason.verifiers import thinkprm_data as td

TOK = CharTokenizer()
CONFIG = run_config.model_config_from(
    dict(vocab_size=0, num_layers=1, embed_dim=32, mlp_dim=64, num_heads=4,
         num_kv_heads=2, qkv_bias=True, tie_embeddings=True), TOK.vocab_size)


def test_judge_prompt_and_p_yes():
  params = init_params(CONFIG, jax.random.key(1))
  question, steps = 'Start at 2. Add 3, then add 1. Answer mod 10.', ['2+3=5',
                                                                      '5+1=7']
  plain = LLMJudge(CONFIG, params, TOK, max_chain_tokens=6, cache_size=256)
  assert plain.prompt(question, steps) == td.verifier_prompt(question, steps)
  judge = LLMJudge(CONFIG, params, TOK, max_chain_tokens=6, cache_size=512,
                   instruction=JUDGE_INSTRUCTION)
  prompt = judge.prompt(question, steps)
  assert prompt.startswith(JUDGE_INSTRUCTION) and prompt.endswith(
      td.verifier_prompt(question, steps))
  [j] = judge.judge([question], [steps])
  # Garbage from a random model: recorded as unknown, never an exception.
  assert j.step_scores is None and j.first_error is None
  assert j.info['unknown_chains'] == 1
  ctx = TOK.encode(prompt, add_bos=True) + j.info['chain_tokens'][0]
  lp_yes, lp_no = score(params, CONFIG, [ctx, ctx],
                        [TOK.encode(td.YES), TOK.encode(td.NO)])
  want = 1 / (1 + np.exp(lp_no.mean() - lp_yes.mean()))
  np.testing.assert_allclose(j.info['p_yes'], want, atol=2e-5)
  assert judge.first_errors([question], [steps]) == [None]
  assert first_error_predictions(judge, [(question, steps)]) == [None]
  assert first_error_predictions(judge, []) == []


class _Stub:
  """A Verifier whose first error is the number of steps minus two."""

  def judge(self, questions, steps):
    return [Judgement(None, len(s) - 2 if len(s) > 1 else None)
            for s in steps]


def test_first_error_predictions_keeps_order():
  items = [('q1', ['a', 'b', 'c']), ('q2', ['a']), ('q3', ['a', 'b'])]
  assert first_error_predictions(_Stub(), items) == [1, None, 0]
