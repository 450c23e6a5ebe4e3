"""Discriminative process reward model: a score at every step boundary.

  prm = DiscriminativePRM(params, model_cfg, tokenizer, head='scalar')
  judgements = prm.judge(questions, steps)   # step_scores in [0, 1]
  prm = load_prm('runs/prm')                  # from a recipes/prm.py workdir

Each (question, steps) is tokenised as TRL's PRMTrainer does
(`data.step_labels.encode_example`: every step followed by the separator's
ids); the step's score is sigmoid of the `models.heads.RewardModel` logit at
the separator's last token (scalar head), or p('+') / (p('+') + p('-'))
there (token head). Solutions are scored in batches of `batch_size` rows
padded to a power-of-two width, one jitted forward pass per batch (one
compilation per width). A question longer than max_len / 2 tokens keeps
its end (as TRL cuts prompts); steps past `max_len` tokens get NaN (unscored,
`info['unscored_steps']`), which `first_below` skips.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.data import step_labels
from jaxreason.data.tokenizer import Tokenizer, load_tokenizer
from jaxreason.models.heads import RewardModel
from jaxreason.models.transformer import TransformerConfig
from jaxreason.sampling.sampler import bucket
from jaxreason.train import checkpoint, run_config
from jaxreason.verifiers.base import Judgement


def token_head_ids(tokenizer: Tokenizer, plus: str = '+',
                   minus: str = '-') -> tuple[int, int]:
  """Ids of the '+' and '-' tokens (each must be one token)."""
  ids = tokenizer.encode(plus), tokenizer.encode(minus)
  if len(ids[0]) != 1 or len(ids[1]) != 1:
    raise ValueError(f'{plus!r} -> {ids[0]}, {minus!r} -> {ids[1]}: the '
                     'token head needs single-token labels')
  return ids[0][0], ids[1][0]


def make_reward_model(model_cfg: TransformerConfig, head: str,
                      tokenizer: Tokenizer) -> RewardModel:
  plus, minus = token_head_ids(tokenizer) if head == 'token' else (-1, -1)
  return RewardModel(model_cfg, head=head, plus_id=plus, minus_id=minus)


class DiscriminativePRM:
  """A `Verifier` from a RewardModel's params (see module docstring)."""

  def __init__(self, params: Any, model_cfg: TransformerConfig,
               tokenizer: Tokenizer, *, head: str = 'scalar',
               separator: str = step_labels.SEPARATOR, max_len: int = 512,
               batch_size: int = 16):
    self.params = params
    self.tokenizer = tokenizer
    self.model = make_reward_model(model_cfg, head, tokenizer)
    self.separator_ids = tokenizer.encode(separator)
    self.max_len = min(max_len, model_cfg.max_position_embeddings or max_len)
    self.batch_size = batch_size
    model = self.model
    self._forward = jax.jit(lambda p, t, s: model.apply(
        {'params': p}, t, segment_ids=s))

  def encode(self, question: str, steps: Sequence[str]) -> dict[str, Any]:
    return step_labels.encode_example(
        self.tokenizer, question, steps, None,
        separator_ids=self.separator_ids, max_len=self.max_len,
        max_prompt_len=self.max_len // 2)

  def score_logits(self, encoded: Sequence[dict[str, Any]]
                   ) -> list[np.ndarray]:
    """Score logits at every token of each encoded solution: [L_i] each."""
    out = []
    for start in range(0, len(encoded), self.batch_size):
      chunk = list(encoded[start:start + self.batch_size])
      width = bucket(max(len(e['tokens']) for e in chunk), 32)
      arr = step_labels.batch_arrays(
          chunk + [chunk[0]] * (self.batch_size - len(chunk)), width)
      logits = np.asarray(self._forward(self.params,
                                        jnp.asarray(arr['tokens']),
                                        jnp.asarray(arr['segment_ids'])))
      out.extend(logits[i, :len(e['tokens'])] for i, e in enumerate(chunk))
    return out

  def encode_and_score(self, questions: Sequence[str],
                       steps: Sequence[Sequence[str]]) -> tuple[list, list]:
    """(encoded, per-token logits) of each (question, steps) pair."""
    if len(questions) != len(steps):
      raise ValueError(f'{len(questions)} questions, {len(steps)} solutions')
    encoded = [self.encode(q, s) for q, s in zip(questions, steps)]
    return encoded, (self.score_logits(encoded) if encoded else [])

  def judge(self, questions: Sequence[str],
            steps: Sequence[Sequence[str]]) -> list[Judgement]:
    """P(correct so far) at each step (NaN for steps past max_len)."""
    encoded, logits = self.encode_and_score(questions, steps)
    out = []
    for e, lg, st in zip(encoded, logits, steps):
      probs = 1.0 / (1.0 + np.exp(-lg[e['label_positions']].astype(
          np.float64)))
      unscored = len(st) - e['num_steps_kept']
      scores = tuple(float(p) for p in probs) + (math.nan,) * unscored
      info = {'unscored_steps': unscored} if unscored else {}
      out.append(Judgement(step_scores=scores, tokens=len(e['tokens']),
                           info=info))
    return out


def load_prm(workdir: str, *, batch_size: int = 16,
             max_len: int | None = None, step: int | None = None
             ) -> DiscriminativePRM:
  """The PRM (or ORM / ranking RM) a `recipes.prm` run saved in workdir."""
  cfg = run_config.load_run_config(workdir)
  tok_dir = os.path.join(workdir, run_config.TOKENIZER_DIR)
  if os.path.isdir(tok_dir):
    from_dir = load_tokenizer(tok_dir)
  else:
    from_dir = run_config.tokenizer_from_config(cfg.tokenizer)
  model_cfg = run_config.model_config_from(cfg.model, from_dir.vocab_size)
  model = make_reward_model(model_cfg, cfg.head, from_dir)
  abstract = nn.unbox(jax.eval_shape(
      lambda r: model.init(r, jnp.zeros((1, 1), jnp.int32))['params'],
      jax.random.key(0)))
  params = checkpoint.restore_params(os.path.join(workdir, 'checkpoints'),
                                     abstract, step)
  logging.info('Loaded %s-head reward model from %s', cfg.head, workdir)
  return DiscriminativePRM(params, model_cfg, from_dir, head=cfg.head,
                           separator=cfg.separator,
                           max_len=max_len or cfg.max_len,
                           batch_size=batch_size)
