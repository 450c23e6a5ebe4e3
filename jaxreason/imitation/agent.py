"""World-model agents of the imitation study: models on disk, acting, batches.

  cfg = wm_config(config, env, action_free=False)
  params = init_world_model(cfg, key)            # or load_model(dir, name)
  agent = Agent(cfg, hidden=(128, 128))
  act_fn = agent.act_fn(wm_params, policy_params, deterministic=True)

Agents act by filtering their observations with the world model (posterior
state) and applying the policy to its features.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

from absl import logging
from flax import serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxreason.imitation import data as data_lib
from jaxreason.imitation import episodes as ep_lib
from jaxreason.imitation import networks
from jaxreason.models.world_model import networks as wm_networks
from jaxreason.models.world_model import world_model as wm_lib

Array = jax.Array


# --- Parameters on disk -------------------------------------------------------

def save_model(directory: str, name: str, params: Any, meta: dict) -> None:
  """params as msgpack + meta as JSON, each written atomically."""
  os.makedirs(directory, exist_ok=True)
  for suffix, blob in (('.msgpack', serialization.msgpack_serialize(
      jax.device_get(params))), ('.json', json.dumps(meta, indent=1).encode())):
    tmp = os.path.join(directory, f'.{name}{suffix}.tmp')
    with open(tmp, 'wb') as f:
      f.write(blob)
    os.replace(tmp, os.path.join(directory, name + suffix))


def load_model(directory: str, name: str) -> tuple[Any, dict]:
  path = os.path.join(directory, name + '.msgpack')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: expected a finished '
                            'pretrain workdir (configs/aime/pretrain.py)')
  with open(path, 'rb') as f:
    params = serialization.msgpack_restore(f.read())
  with open(os.path.join(directory, name + '.json')) as f:
    return params, json.load(f)


def wm_config(config: ml_collections.ConfigDict, env, *, action_free: bool
              ) -> wm_lib.WorldModelConfig:
  return wm_lib.WorldModelConfig(
      obs_kind='state', obs_dim=env.obs_dim, action_dim=env.action_dim,
      action_free=action_free, reward_head=not action_free,
      **config.world_model.to_dict())


def world_model_meta(cfg: wm_lib.WorldModelConfig, **kw) -> dict:
  return {'world_model': dataclasses.asdict(cfg), **kw}


def init_world_model(cfg: wm_lib.WorldModelConfig, key: Array) -> Any:
  """Random world-model params (the variables dict of `WorldModel`)."""
  obs = jnp.zeros((1, 2, cfg.obs_dim))
  act = None if cfg.action_free else jnp.zeros((1, 2, cfg.action_dim))
  return wm_lib.WorldModel(cfg).init(key, obs, act, jnp.ones((1, 2), bool),
                                     key)


def world_model_from(config: ml_collections.ConfigDict, env, path: str,
                     what: str, key: Array) -> tuple[Any, wm_lib.WorldModelConfig]:
  """(params, config) of the pretrain workdir `path`; '' (:debug): random."""
  action_free = what == 'demo'
  if not path:
    logging.warning('no %s world model dir: a random world model '
                    '(debugging only)', what)
    cfg = wm_config(config, env, action_free=action_free)
    return init_world_model(cfg, key), cfg
  params, meta = load_model(path, 'world_model')
  logging.info('%s world model from %s (%s)', what, path, meta['dataset'])
  return params, wm_lib.WorldModelConfig(**meta['world_model'])


# --- Batches ------------------------------------------------------------------

def sample_batch(episodes, batch_size: int, length: int,
                 rng: np.random.Generator, keys=('obs', 'action', 'is_first')
                 ) -> dict[str, np.ndarray]:
  """Windows [B, L, ..]; every window starts a fresh filter (is_first[:, 0])."""
  batch = ep_lib.sample_sequences(episodes, batch_size, length, rng, keys)
  batch['is_first'] = batch['is_first'].copy()
  batch['is_first'][:, 0] = True
  return batch


# --- Agent: filter with the world model, act with the policy ------------------

def value_net(hidden: tuple[int, ...]) -> wm_networks.MLP:
  """features [..., F] -> [..., 1]: ELU MLP (value, discriminator)."""
  return wm_networks.MLP(tuple(hidden), out=1, act='elu', layer_norm=False)


class Agent:
  """Policy over world-model features, with the jitted filter step."""

  def __init__(self, wm_cfg: wm_lib.WorldModelConfig, hidden: tuple[int, ...]):
    self.model = wm_lib.WorldModel(wm_cfg)
    self.wm = wm_lib.world_model_fns(self.model)
    self.actor = networks.TanhGaussianActor(wm_cfg.action_dim, hidden)
    self.policy_fn = functools.partial(networks.actor_sample, self.actor.apply)
    self.action_dim = wm_cfg.action_dim
    self._step = jax.jit(self._filter_act, static_argnames=('deterministic',))

  def init_policy(self, rng: Array) -> Any:
    feats = jnp.zeros((1, self.model.config.feature_dim))
    return self.actor.init(rng, feats)['params']

  def _filter_act(self, wm_params, pol_params, state, prev_action, obs,
                  is_first, rng, deterministic: bool):
    k_step, k_act = jax.random.split(rng)
    embed = self.wm.encode(wm_params, obs[None, None])[:, 0]
    post, _ = self.wm.obs_step(wm_params, state, prev_action[None], embed,
                               is_first[None], k_step)
    feats = self.wm.features(post)
    if deterministic:
      action = networks.actor_mode(self.actor.apply, pol_params, feats)
    else:
      action, _ = self.policy_fn(pol_params, feats, k_act)
    return post, action[0]

  def act_fn(self, wm_params, pol_params, deterministic: bool
             ) -> ep_lib.ActFn:
    """`act_fn(step, key)` keeping the belief state between calls."""
    memo = {}

    def act(step, key):
      if step['is_first']:
        memo['state'] = self.wm.initial(wm_params, 1)
        memo['action'] = jnp.zeros((self.action_dim,), jnp.float32)
      memo['state'], action = self._step(
          wm_params, pol_params, memo['state'], memo['action'],
          jnp.asarray(step['obs'], jnp.float32),
          jnp.asarray(step['is_first']), key, deterministic=deterministic)
      memo['action'] = jnp.clip(action, -1.0, 1.0)
      return np.asarray(memo['action'])

    return act

  def evaluate(self, config, env, wm_params, pol_params,
               demo_return: float) -> dict:
    """Deterministic episodes (seeds 20_000 + i): `data.eval_summary`."""
    wm_params = jax.device_get(wm_params)
    pol_params = jax.device_get(pol_params)
    returns = data_lib.evaluate(
        env, lambda: self.act_fn(wm_params, pol_params, True),
        config.eval_episodes, 20_000)
    return data_lib.eval_summary(returns, demo_return)
