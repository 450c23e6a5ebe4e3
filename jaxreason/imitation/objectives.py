"""The imitation stages' steps as `train.step` losses, and AIME-v2's reward.

Each `*_loss_fn` returns `loss_fn(params, batch, rng, frozen) -> (loss,
metrics)` for `jaxreason.train.step.make_train_step`, so every stage runs on
the same jitted, sharded, donating step as the LLM recipes. AIME-v2's params
are groups (`train.state.ParamGroups`):

  world_model   the embodiment model (+ its reward head)   own optimiser
  policy        tanh-Gaussian actor on its features         own optimiser
  value         critic of the imagination actor             own optimiser
  disc          discriminator (reward='adversarial' only)   own optimiser
  target_value  EMA of value          carried (`after_agent_update`)
  return_scale  actor's return scale  carried (`after_agent_update`)

and three steps update them: `v2_world_model_loss_fn` (groups
('world_model',)), `v2_discriminator_loss_fn` (('disc',)) and
`v2_agent_loss_fn` (('policy', 'value')).

The surrogate reward (AIME-v2, Zhang et al. 2025) is computed along whole
episodes (`episode_surrogate_reward`): the action-free demo model filters
each episode once, from its first step, when the episode enters the data,
and windows of the stored reward are the reward head's targets. Computing it
on the training windows instead would restart the filter at each window and
give its first steps a cold-start reward.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxreason.imitation import aime
from jaxreason.imitation import bco as bco_lib
from jaxreason.imitation.agent import Agent
from jaxreason.models.world_model import world_model as wm_lib
from jaxreason.models.world_model.world_model import WorldModelFns
from jaxreason.train import step as step_lib

Array = jax.Array
SURROGATE = 'surrogate_reward'


# --- BCO ------------------------------------------------------------------------

def regression_loss_fn(module, group: str, inputs: tuple[str, ...]
                       ) -> step_lib.LossFn:
  """MSE of `module` on params[group] from batch[inputs] to batch['action']."""

  def loss_fn(params, batch, rng, frozen):
    del rng, frozen
    pred = module.apply({'params': params[group]},
                        *[batch[k] for k in inputs])
    loss = jnp.mean(jnp.square(pred - batch['action']))
    return loss, {f'{group}/loss': loss}

  return loss_fn


def bco_losses(action_dim: int, cfg: bco_lib.BCOConfig
               ) -> tuple[step_lib.LossFn, step_lib.LossFn]:
  """(inverse-model loss on params['idm'], BC loss on params['policy'] and,
  when the batch has 'true', params['bc_true'] on the demos' true actions)."""
  idm = regression_loss_fn(bco_lib.InverseDynamics(action_dim, cfg.hidden),
                           'idm', ('obs', 'next_obs'))
  actor = bco_lib.DeterministicActor(action_dim, cfg.hidden)
  policy = regression_loss_fn(actor, 'policy', ('obs',))
  true = regression_loss_fn(actor, 'bc_true', ('obs',))

  def bc_loss(params, batch, rng, frozen):
    loss, m = policy(params, batch['labelled'], rng, frozen)
    if 'true' in batch:  # Disjoint params: the sum trains both exactly.
      loss_true, m_true = true(params, batch['true'], rng, frozen)
      loss, m = loss + loss_true, {**m, **m_true}
    return loss, m

  return idm, bc_loss


# --- AIME -------------------------------------------------------------------------

def aime_loss_fn(agent: Agent, config: ml_collections.ConfigDict
                 ) -> step_lib.LossFn:
  """AIME on params['policy']; frozen = the world model; batch obs, is_first."""

  def loss_fn(params, batch, rng, wm_params):
    return aime.aime_loss(
        wm_params, params['policy'], agent.wm, agent.policy_fn, batch['obs'],
        batch['is_first'], rng, free_nats=config.aime_free_nats,
        action_entropy_weight=config.action_entropy_weight)

  return loss_fn


# --- AIME-v2 ----------------------------------------------------------------------

def episode_surrogate_reward(demo_params: Any, demo_wm: WorldModelFns,
                             episode: dict[str, np.ndarray], rng: Array
                             ) -> np.ndarray:
  """The surrogate reward [T + 1] of a whole episode (filtered from t = 0)."""
  obs = jnp.asarray(episode['obs'], jnp.float32)[None]
  is_first = jnp.asarray(episode['is_first'])[None]
  return np.asarray(_surrogate(demo_params, demo_wm, obs, is_first, rng)[0])


@functools.partial(jax.jit, static_argnums=1)
def _surrogate(demo_params, demo_wm, obs, is_first, rng):
  return aime.surrogate_reward(demo_params, demo_wm, obs, is_first, rng)


def with_surrogate_reward(episode: dict, demo_params: Any,
                          demo_wm: WorldModelFns, rng: Array) -> dict:
  return {**episode, SURROGATE: episode_surrogate_reward(
      demo_params, demo_wm, episode, rng)}


def v2_world_model_loss_fn(agent: Agent, config: ml_collections.ConfigDict
                           ) -> step_lib.LossFn:
  """ELBO of the online/embodiment windows (+ the reward head on the stored
  surrogate reward, batch['surrogate_reward'] [B, L], when present)."""
  wm_loss = aime_world_model_loss(agent, config)

  def loss_fn(params, batch, rng, frozen):
    del frozen
    k_loss, k_feat = jax.random.split(rng)
    p = params['world_model']
    loss, m = wm_loss(p, batch, k_loss, None)
    if SURROGATE in batch:
      post, _ = aime.observe(agent.wm, p, batch['obs'], batch['action'],
                             batch['is_first'], k_feat)
      feats = jax.lax.stop_gradient(agent.wm.features(post))
      r_loss, r_m = aime.reward_head_loss(p, agent.wm, feats,
                                          batch[SURROGATE])
      loss, m = loss + r_loss, dict(m, **r_m)
    return loss, m

  return loss_fn


def aime_world_model_loss(agent: Agent, config: ml_collections.ConfigDict
                          ) -> step_lib.LossFn:
  """The world model's ELBO (`make_world_model_loss`) with the config's KL."""
  return wm_lib.make_world_model_loss(agent.model, free_nats=config.free_nats,
                                      kl_balance=config.kl_balance)


def scalar_fn(module) -> Callable[[Any, Array], Array]:
  """(params, x [..., F]) -> [...] for a one-output MLP (value, disc)."""
  return lambda p, x: module.apply({'params': p}, x)[..., 0]


def v2_discriminator_loss_fn(agent: Agent, disc_fn) -> step_lib.LossFn:
  """Discriminator on embeddings: batch {'demo_obs', 'online_obs'} [B, L, D]."""

  def loss_fn(params, batch, rng, frozen):
    del frozen
    wm_p = jax.lax.stop_gradient(params['world_model'])
    flat = lambda e: e.reshape(-1, e.shape[-1])
    return aime.discriminator_loss(
        params['disc'], disc_fn,
        flat(agent.wm.encode(wm_p, batch['demo_obs'])),
        flat(agent.wm.encode(wm_p, batch['online_obs'])), rng)

  return loss_fn


def v2_agent_loss_fn(agent: Agent, config: ml_collections.ConfigDict,
                     value_fn, disc_fn) -> step_lib.LossFn:
  """Policy (AIME term + imagination actor) and value.

  batch {'online': windows with actions (imagination starts), 'demo':
  observation-only demo windows}; the world model (and discriminator) are
  read from params, not trained here.
  """

  def loss_fn(params, batch, rng, frozen):
    del frozen
    k_aime, k_obs, k_ac = jax.random.split(rng, 3)
    wm_p = jax.lax.stop_gradient(params['world_model'])
    online, demo = batch['online'], batch['demo']
    loss, m = jnp.zeros(()), {}
    if config.aime_weight > 0:
      a_loss, a_m = aime.aime_loss(
          wm_p, params['policy'], agent.wm, agent.policy_fn, demo['obs'],
          demo['is_first'], k_aime, free_nats=config.aime_free_nats,
          action_entropy_weight=config.action_entropy_weight)
      loss = loss + config.aime_weight * a_loss
      m.update({f'aime/{k}': v for k, v in a_m.items()})
    if config.reward != 'none':
      post, _ = aime.observe(agent.wm, wm_p, online['obs'], online['action'],
                             online['is_first'], k_obs)
      start = aime.flatten_states(post)
      n = min(config.imagination_starts, start.deter.shape[0])
      idx = jax.random.permutation(k_obs, start.deter.shape[0])[:n]
      start = jax.tree.map(lambda x: x[idx], start)
      reward_fn = None
      if config.reward == 'adversarial':  # On the decoded obs' embedding.
        disc_p = params['disc']
        reward_fn = lambda f: aime.adversarial_reward(
            disc_p, disc_fn, agent.wm.encode(
                wm_p, agent.model.apply(wm_p, f, method='decode')))
      ac_loss, ac_m = aime.actor_critic_losses(
          wm_p, params['policy'], params['value'], params['target_value'],
          agent.wm, agent.policy_fn, value_fn, start, k_ac,
          horizon=config.horizon, gamma=config.gamma, lambda_=config.lambda_,
          actor_weight=config.actor_weight, value_weight=1.0,
          entropy_weight=config.entropy_weight, reward_fn=reward_fn,
          return_scale=(params['return_scale'] if config.return_norm
                        else None),
          scale_decay=config.return_norm_decay,
          scale_floor=config.return_norm_floor)
      loss = loss + ac_loss
      m.update({f'ac/{k}': v for k, v in ac_m.items()})
    return loss, m

  return loss_fn


def after_agent_update(config: ml_collections.ConfigDict):
  """EMA of the target critic and the new return scale, after an agent step."""

  def after(state, metrics):
    params = dict(state.params)
    params['target_value'] = aime.ema_update(
        params['target_value'], params['value'], config.target_tau)
    if 'ac/return_scale' in metrics:
      params['return_scale'] = metrics['ac/return_scale']
    return state.replace(params=params)

  return after
