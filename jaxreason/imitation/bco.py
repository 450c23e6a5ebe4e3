"""Behavioural cloning (BC) and BC from observation, BCO(0) (Torabi 2018).

  labelled = infer_actions(idm_params, demo_episodes, action_dim, config)
  act_fn = bc_act_fn(policy_params, action_dim, config)   # for run_episode

The models, the inverse model's labelling and the cloned policy. Training is
the 'bco' stage of recipes/aime.py on the shared core (`bco_params`,
`bco_steps`: param groups 'idm', 'policy', 'bc_true' and
`objectives.bco_losses` in `make_train_step` steps).

BCO(0): an inverse dynamics model f(o_t, o_{t+1}) -> a (the action taken at
t, stored as action[t+1] in an episode record) is regressed on embodiment
data, which has actions; it labels the observation-only demonstrations with
inferred actions, and a policy is cloned from those. BC clones the true
actions instead: the upper reference when demonstrator actions are known.

Both models are deterministic MLPs with a tanh output, trained by mean squared
error; the policy acts tanh(MLP(o)) in [-1, 1] (no Gaussian head: BC with a
tanh-Gaussian likelihood is ill-posed at saturated actions, and the baseline
only needs a point estimate). The inverse model reads [o_t, o_{t+1} - o_t].
Observations are used as the env gives them (no normalisation).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.imitation import episodes as episodes_lib
from jaxreason.imitation import networks

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class BCOConfig:
  """Shared by the inverse model and the policy."""

  hidden: tuple[int, ...] = (256, 256)
  learning_rate: float = 1e-3   # Adam, cosine-decayed to 0 over the steps.
  batch_size: int = 256
  idm_steps: int = 10_000
  bc_steps: int = 10_000
  log_every: int = 1000   # steps per log line.


class InverseDynamics(nn.Module):
  """(obs [..., D], next_obs [..., D]) -> action [..., A] in (-1, 1)."""

  action_dim: int
  hidden: Sequence[int] = (256, 256)

  @nn.compact
  def __call__(self, obs: Array, next_obs: Array) -> Array:
    x = jnp.concatenate([obs, next_obs - obs], axis=-1)
    return jnp.tanh(networks.mlp(self.hidden, self.action_dim)(x))


class DeterministicActor(nn.Module):
  """obs [..., D] -> action [..., A] = tanh(MLP(obs))."""

  action_dim: int
  hidden: Sequence[int] = (256, 256)

  @nn.compact
  def __call__(self, obs: Array) -> Array:
    return jnp.tanh(networks.mlp(self.hidden, self.action_dim)(obs))


def infer_actions(idm_params: Any, episodes: Sequence[episodes_lib.Episode],
                  action_dim: int, config: BCOConfig
                  ) -> list[episodes_lib.Episode]:
  """Copies of `episodes` whose `action` holds the inverse model's labels.

  action[t+1] = f(obs[t], obs[t+1]); action[0] = 0 (episodes.py format). A
  true `action` key, if any, is replaced (kept as `true_action`).
  """
  idm = InverseDynamics(action_dim, config.hidden)
  apply = jax.jit(lambda p, o, n: idm.apply({'params': p}, o, n))
  out = []
  for ep in episodes:
    pred = np.asarray(apply(idm_params, ep['obs'][:-1], ep['obs'][1:]))
    labelled = dict(ep)
    if 'action' in ep:
      labelled['true_action'] = ep['action']
    labelled['action'] = np.concatenate(
        [np.zeros((1, action_dim), np.float32), pred.astype(np.float32)])
    out.append(labelled)
  return out


def bc_policy(params: Any, obs: Array, action_dim: int,
              config: BCOConfig) -> Array:
  """The cloned policy's action [..., A] for obs [..., D]."""
  return DeterministicActor(action_dim, config.hidden).apply(
      {'params': params}, obs)


def bc_act_fn(params: Any, action_dim: int, config: BCOConfig):
  """`act_fn(step, key)` for episodes.run_episode (deterministic)."""
  apply = jax.jit(functools.partial(bc_policy, action_dim=action_dim,
                                    config=config))
  return lambda step, key: np.asarray(apply(params, step['obs']))
