"""Reward heads on the transformer: one score logit per position.

  model = RewardModel(transformer_config, head='scalar')
  logits = model.apply({'params': p}, tokens)     # [B, T] float32

head='scalar': a Dense(1) on the final hidden state (after the last norm);
params {'lm': <Transformer params>, 'head': {'kernel', 'bias'}}.
head='token': log p('+') - log p('-') from the LM's own next-token logits
(`losses.reward.two_token_logits`); params {'lm': ...}, no new ones, so a
policy's weights are the whole model. The score of a step is read at its
separator's last token (see jaxreason/data/step_labels.py).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreason.losses.reward import two_token_logits
from jaxreason.models.transformer import Transformer, TransformerConfig

HEADS = ('scalar', 'token')


class RewardModel(nn.Module):
  """A Transformer ('lm') and a scalar or +/- token head."""

  config: TransformerConfig
  head: str = 'scalar'
  plus_id: int = -1  # Token ids of '+' and '-' (head='token').
  minus_id: int = -1

  @nn.compact
  def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
               segment_ids: jax.Array | None = None) -> jax.Array:
    """tokens, positions, segment_ids: int32 [B, T] -> score logits [B, T]."""
    if self.head not in HEADS:
      raise ValueError(f'head={self.head!r}: expected one of {HEADS}')
    logits, hidden = Transformer(self.config, name='lm')(
        tokens, positions, segment_ids, return_hidden=True)
    if self.head == 'token':
      assert self.plus_id >= 0 and self.minus_id >= 0, 'set plus_id, minus_id'
      return two_token_logits(logits, self.plus_id, self.minus_id)
    out = nn.Dense(
        1, dtype=self.config.jnp_dtype,
        param_dtype=self.config.jnp_param_dtype,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.normal(self.config.init_std), ('embed', None)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                               (None,)),
        name='head')(hidden)
    return out[..., 0].astype(jnp.float32)


def init_reward_params(model: RewardModel, rng: jax.Array):
  """Unboxed random parameters (small models)."""
  return nn.unbox(model.init(rng, jnp.zeros((1, 1), jnp.int32))['params'])
