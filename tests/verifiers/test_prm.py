"""Reward heads, the discriminative PRM's scores and rollout labels."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.data import step_labels
from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.models.heads import RewardModel, init_reward_params
from jaxreason.models.transformer import Transformer, TransformerConfig
from jaxreason.models.transformer import init_params
from jaxreason.verifiers import aggregate, first_below
from jaxreason.verifiers.prm import DiscriminativePRM, token_head_ids
from jaxreason.verifiers.reward_model import OutcomeRM
from jaxreason.verifiers.rollout_labels import rollout_labels

TOK = CharTokenizer()
CFG = TransformerConfig(vocab_size=TOK.vocab_size, num_layers=1, embed_dim=16,
                        mlp_dim=32, num_heads=2, num_kv_heads=1,
                        max_position_embeddings=128)


def _sig(x):
  return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize('head', ['scalar', 'token'])
def test_judge_scores_are_the_head_at_separators(head):
  plus, minus = token_head_ids(TOK)
  model = RewardModel(CFG, head=head, plus_id=plus, minus_id=minus)
  params = init_reward_params(model, jax.random.key(0))
  if head == 'scalar':  # A non-zero head, so scores differ by position.
    params['head']['kernel'] = jax.random.normal(jax.random.key(1),
                                                 params['head']['kernel'].shape)
  prm = DiscriminativePRM(params, CFG, TOK, head=head, batch_size=2)
  steps = [['1+2=3', '3*2=6', '\\boxed{6}'], ['4-1=3']]
  js = prm.judge(['Start at 1.', 'Start at 4.'], steps)
  for q, st, j in zip(['Start at 1.', 'Start at 4.'], steps, js):
    enc = prm.encode(q, st)
    tokens = jnp.asarray(enc['tokens'])[None]
    if head == 'scalar':
      logits = np.asarray(jax.jit(model.apply)({'params': params},
                                               tokens))[0]
      expect = _sig(logits[enc['label_positions']])
    else:  # p(+) / (p(+) + p(-)) from the LM's own next-token logits.
      lm = np.asarray(jax.jit(Transformer(CFG).apply)(
          {'params': params['lm']}, tokens))[0]
      p = np.exp(lm - lm.max(-1, keepdims=True))
      p = p[enc['label_positions']]
      expect = p[:, plus] / (p[:, plus] + p[:, minus])
    np.testing.assert_allclose(j.step_scores, expect, rtol=1e-4, atol=1e-6)
    assert j.tokens == len(enc['tokens'])
    assert len(set(np.round(j.step_scores, 6))) == len(st) or len(st) == 1
  outcome = OutcomeRM(params, CFG, TOK, head=head, batch_size=2).judge(
      ['Start at 1.'], steps[:1])[0]
  assert outcome.step_scores == pytest.approx(js[0].step_scores[-1:],
                                              rel=1e-5)


def test_unscored_steps_are_nan_and_skipped():
  model = RewardModel(CFG)
  params = init_reward_params(model, jax.random.key(0))
  prm = DiscriminativePRM(params, CFG, TOK, max_len=20)
  j = prm.judge(['Q'], [['1+1=2', '2+2=4', '4+4=8', '8+8=6']])[0]
  assert j.info['unscored_steps'] == 2 and math.isnan(j.step_scores[-1])
  assert first_below(j.step_scores, 0.0) == -1
  assert aggregate(j.step_scores[:2], 'min') == min(j.step_scores[:2])


def test_rollout_labels():
  params = init_params(CFG, jax.random.key(0))
  steps = [['1+2=3', '\\boxed{3}'], ['1+2=4', '\\boxed{4}']]
  records = [{'answer': '3'}, {'answer': '3'}]

  def always(texts, recs):  # Every completion counts as right.
    return np.ones(len(texts), np.float32)

  labels = rollout_labels(params, CFG, TOK, ['Q', 'Q'], steps, records,
                          always, n=3, max_new_tokens=4, cache_size=64)
  assert labels[0].hard == (1.0, 1.0) and labels[0].samples == 3

  def boxed_answer(texts, recs):
    return np.asarray([t.endswith('\\boxed{' + r['answer'] + '}')
                       for t, r in zip(texts, recs)], np.float32)

  labels = rollout_labels(params, CFG, TOK, ['Q', 'Q'], steps, records,
                          boxed_answer, n=4, max_new_tokens=4, cache_size=64)
  # Final steps are graded as they are; a random model never writes a box.
  assert labels[0].hard[1] == 1.0 and labels[1].hard[1] == 0.0
  for l in labels:
    assert l.soft[0] == 0.0 and l.hard[0] == 0.0 and l.samples == 4
