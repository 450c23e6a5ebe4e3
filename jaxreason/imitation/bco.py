"""Behavioural cloning (BC) and BC from observation, BCO(0) (Torabi 2018).

  idm, policy, metrics = train_bco(embodiment_episodes, demo_episodes, config)
  policy, metrics = train_bc(demo_episodes_with_actions, config)   # reference
  act_fn = bc_act_fn(policy, action_dim, config)          # for run_episode

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
from typing import Any, Callable, Sequence

from absl import logging
import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreason.imitation import episodes as episodes_lib
from jaxreason.imitation import networks

Array = jax.Array
TrainState = train_state.TrainState


@dataclasses.dataclass(frozen=True)
class BCOConfig:
  """Shared by the inverse model and the policy."""

  hidden: tuple[int, ...] = (256, 256)
  learning_rate: float = 1e-3   # Adam, cosine-decayed to 0 over the steps.
  batch_size: int = 256
  idm_steps: int = 10_000
  bc_steps: int = 10_000
  log_every: int = 1000   # steps per jitted chunk (and per log line).


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


def _regression_step(state: TrainState, inputs: tuple[Array, ...],
                     target: Array) -> tuple[TrainState, dict[str, Array]]:
  def loss_fn(params):
    pred = state.apply_fn({'params': params}, *inputs)
    return jnp.mean((pred - target)**2)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), {
      'loss': loss, 'grad_norm': optax.global_norm(grads)}


def _idm_step(state, batch):
  return _regression_step(state, (batch['obs'], batch['next_obs']),
                          batch['action'])


def _bc_step(state, batch):
  return _regression_step(state, (batch['obs'],), batch['action'])


idm_update = jax.jit(_idm_step)
idm_update.__doc__ = """`idm_update(state, batch) -> (state, metrics)`: one MSE
step of the inverse model; batch: obs, next_obs [B, D], action [B, A] (the
action taken between them). metrics: loss, grad_norm."""

bc_update = jax.jit(_bc_step)
bc_update.__doc__ = """`bc_update(state, batch) -> (state, metrics)`: one MSE
step of the policy; batch: obs [B, D], action [B, A]."""


@functools.partial(jax.jit,
                   static_argnames=('step_fn', 'batch_size', 'num_steps'))
def _train_chunk(state: TrainState, data: dict[str, Array], key: Array,
                 step_fn: Callable, batch_size: int, num_steps: int):
  """num_steps updates on uniform minibatches of `data` ([N, ...] on device)."""
  n = data['action'].shape[0]

  def body(state, k):
    idx = jax.random.randint(k, (batch_size,), 0, n)
    return step_fn(state, jax.tree.map(lambda x: x[idx], data))

  state, metrics = jax.lax.scan(body, state, jax.random.split(key, num_steps))
  return state, jax.tree.map(jnp.mean, metrics)


def _fit(name: str, state: TrainState, data: dict[str, np.ndarray],
         step_fn: Callable, steps: int, config: BCOConfig,
         key: Array) -> tuple[TrainState, dict[str, float]]:
  data = jax.device_put({k: np.asarray(v, np.float32) for k, v in data.items()})
  metrics, done = {}, 0
  while done < steps:
    num = min(config.log_every, steps - done)
    state, metrics = _train_chunk(state, data, jax.random.fold_in(key, done),
                                  step_fn, config.batch_size, num)
    done += num
    metrics = {k: float(v) for k, v in metrics.items()}
    logging.info('%s step %d loss %.4g', name, done, metrics['loss'])
  return state, metrics


def _new_state(module: nn.Module, inputs: Sequence[np.ndarray],
               config: BCOConfig, steps: int, key: Array) -> TrainState:
  """Adam with the learning rate cosine-decayed to 0 over `steps`."""
  params = module.init(key, *[jnp.asarray(x[:1]) for x in inputs])['params']
  schedule = optax.cosine_decay_schedule(config.learning_rate, max(steps, 1))
  return TrainState.create(apply_fn=module.apply, params=params,
                           tx=optax.adam(schedule))


def train_inverse_dynamics(episodes: Sequence[episodes_lib.Episode],
                           config: BCOConfig, *, seed: int = 0
                           ) -> tuple[Any, dict[str, float]]:
  """Fits f(o_t, o_{t+1}) -> action[t+1] on episodes with actions.

  Returns (params, metrics): metrics['loss'] is the mean training MSE of the
  last chunk of `config.log_every` steps.
  """
  data = episodes_lib.transitions(episodes, keys=('obs', 'action'))
  action_dim = data['action'].shape[-1]
  key = jax.random.PRNGKey(seed)
  state = _new_state(InverseDynamics(action_dim, config.hidden),
                     (data['obs'], data['next_obs']), config,
                     config.idm_steps, key)
  state, metrics = _fit('idm', state, data, _idm_step, config.idm_steps,
                        config, jax.random.fold_in(key, 1))
  return state.params, metrics


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


def train_bc(episodes: Sequence[episodes_lib.Episode], config: BCOConfig, *,
             seed: int = 0) -> tuple[Any, dict[str, float]]:
  """Clones pi(o_t) -> action[t+1] from episodes with true or inferred actions.

  Returns (params of a DeterministicActor, metrics).
  """
  data = episodes_lib.transitions(episodes, keys=('obs', 'action'))
  data.pop('next_obs')
  action_dim = data['action'].shape[-1]
  key = jax.random.PRNGKey(seed)
  state = _new_state(DeterministicActor(action_dim, config.hidden),
                     (data['obs'],), config, config.bc_steps, key)
  state, metrics = _fit('bc', state, data, _bc_step, config.bc_steps, config,
                        jax.random.fold_in(key, 1))
  return state.params, metrics


def train_bco(embodiment: Sequence[episodes_lib.Episode],
              demos: Sequence[episodes_lib.Episode], config: BCOConfig, *,
              seed: int = 0) -> tuple[Any, Any, dict[str, float]]:
  """BCO(0): inverse model on `embodiment`, then BC on labelled `demos`.

  `demos` need only `obs` (+ flags); if they do carry true actions, those are
  not used for training, only reported as metrics['idm/demo_action_mse'].

  Returns:
    (idm_params, policy_params, metrics) with metrics 'idm/loss', 'bc/loss'
    and, when demos have actions, 'idm/demo_action_mse'.
  """
  idm_params, idm_metrics = train_inverse_dynamics(embodiment, config,
                                                   seed=seed)
  action_dim = embodiment[0]['action'].shape[-1]
  labelled = infer_actions(idm_params, demos, action_dim, config)
  policy_params, bc_metrics = train_bc(labelled, config, seed=seed + 1)
  metrics = {f'idm/{k}': v for k, v in idm_metrics.items()}
  metrics.update({f'bc/{k}': v for k, v in bc_metrics.items()})
  if all('true_action' in ep for ep in labelled):
    err = np.concatenate([(ep['action'][1:] - ep['true_action'][1:])**2
                          for ep in labelled])
    metrics['idm/demo_action_mse'] = float(err.mean())
  return idm_params, policy_params, metrics


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
