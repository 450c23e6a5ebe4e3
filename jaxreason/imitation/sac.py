"""Soft actor-critic on state observations (Haarnoja et al. 2018, v2).

  config = SACConfig()
  state = init(config, obs_dim, action_dim, jax.random.PRNGKey(0))
  state, metrics = update(state, batch, rng)         # jitted, pure
  action = act(state, obs, rng, deterministic=False)
  state, episodes = train_sac(env, config, steps=100_000, seed=0)

Twin Q-functions with Polyak-averaged targets, a tanh-Gaussian actor and an
automatically tuned temperature alpha with target entropy -|A|. For a batch of
transitions (s, a, r, s', d), with a' ~ pi(.|s') and a~ ~ pi(.|s):

  y           = r + gamma (1 - d) (min_j Qbar_j(s', a') - alpha log pi(a'|s'))
  critic loss = mean[(Q_1(s, a) - y)^2 + (Q_2(s, a) - y)^2]
  actor loss  = mean[alpha log pi(a~|s) - min_j Q_j(s, a~)]
  alpha loss  = mean[-alpha (log pi(a~|s) + target_entropy)]
  Qbar       <- tau Q + (1 - tau) Qbar   (after the critic step)

All three losses are evaluated at the parameters before the update (as in the
original softlearning code); y, alpha in the actor loss and log pi in the
temperature loss are constants (stop_gradient). `update` splits its rng into
(key for a', key for a~) with jax.random.split(rng).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable

from absl import logging
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreason.imitation import episodes as episodes_lib
from jaxreason.imitation import networks

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class SACConfig:
  """SAC hyperparameters (defaults: Haarnoja et al. 2018 / jaxrl on DMC)."""

  hidden: tuple[int, ...] = (256, 256)
  actor_lr: float = 3e-4
  critic_lr: float = 3e-4
  temperature_lr: float = 3e-4
  discount: float = 0.99
  tau: float = 0.005
  init_temperature: float = 1.0
  target_entropy: float | None = None  # None: -action_dim.
  log_std_min: float = -5.0
  log_std_max: float = 2.0
  batch_size: int = 256
  random_steps: int = 5000      # uniform random actions before learning.
  updates_per_step: int = 1     # gradient updates per env step (UTD ratio).
  buffer_capacity: int | None = 1_000_000  # agent steps.


@flax.struct.dataclass
class SACState:
  """All trainable state; `config` and `action_dim` are static."""

  step: Array  # int32 []: updates done.
  actor_params: Any
  critic_params: Any
  target_critic_params: Any
  log_alpha: Array  # float32 [].
  actor_opt_state: Any
  critic_opt_state: Any
  temperature_opt_state: Any
  config: SACConfig = flax.struct.field(pytree_node=False)
  action_dim: int = flax.struct.field(pytree_node=False)

  @property
  def actor(self) -> networks.TanhGaussianActor:
    return networks.TanhGaussianActor(
        self.action_dim, self.config.hidden, self.config.log_std_min,
        self.config.log_std_max)

  @property
  def critic(self) -> networks.DoubleQCritic:
    return networks.DoubleQCritic(self.config.hidden)

  @property
  def target_entropy(self) -> float:
    if self.config.target_entropy is None:
      return -float(self.action_dim)
    return self.config.target_entropy


def _optimizers(config: SACConfig):
  return (optax.adam(config.actor_lr), optax.adam(config.critic_lr),
          optax.adam(config.temperature_lr))


def init(config: SACConfig, obs_dim: int, action_dim: int,
         rng: Array) -> SACState:
  """Fresh networks (target critic = critic) and optimizer states."""
  return _init(rng, config=config, obs_dim=obs_dim, action_dim=action_dim)


@functools.partial(jax.jit, static_argnames=('config', 'obs_dim',
                                             'action_dim'))
def _init(rng: Array, *, config: SACConfig, obs_dim: int,
          action_dim: int) -> SACState:
  actor = networks.TanhGaussianActor(action_dim, config.hidden,
                                     config.log_std_min, config.log_std_max)
  critic = networks.DoubleQCritic(config.hidden)
  k_actor, k_critic = jax.random.split(rng)
  obs = jnp.zeros((1, obs_dim), jnp.float32)
  action = jnp.zeros((1, action_dim), jnp.float32)
  actor_params = actor.init(k_actor, obs)['params']
  critic_params = critic.init(k_critic, obs, action)['params']
  log_alpha = jnp.full((), np.log(config.init_temperature), jnp.float32)
  actor_tx, critic_tx, temperature_tx = _optimizers(config)
  return SACState(
      step=jnp.zeros((), jnp.int32),
      actor_params=actor_params,
      critic_params=critic_params,
      target_critic_params=jax.tree.map(jnp.copy, critic_params),
      log_alpha=log_alpha,
      actor_opt_state=actor_tx.init(actor_params),
      critic_opt_state=critic_tx.init(critic_params),
      temperature_opt_state=temperature_tx.init(log_alpha),
      config=config,
      action_dim=action_dim)


# The loss formulas, on arrays (each tested against NumPy).


def td_target(reward: Array, terminal: Array, next_q1: Array, next_q2: Array,
              next_log_prob: Array, alpha: Array, discount: float) -> Array:
  """y = r + gamma (1 - d) (min(q1', q2') - alpha log pi(a'|s')); all [B]."""
  soft_v = jnp.minimum(next_q1, next_q2) - alpha * next_log_prob
  return reward + discount * (1.0 - terminal.astype(jnp.float32)) * soft_v


def critic_loss(q1: Array, q2: Array, target: Array) -> Array:
  """mean[(q1 - y)^2 + (q2 - y)^2]; all [B]."""
  return ((q1 - target)**2 + (q2 - target)**2).mean()


def actor_loss(log_prob: Array, q1: Array, q2: Array, alpha: Array) -> Array:
  """mean[alpha log pi - min(q1, q2)]; all [B]."""
  return (alpha * log_prob - jnp.minimum(q1, q2)).mean()


def temperature_loss(log_alpha: Array, log_prob: Array,
                     target_entropy: float) -> Array:
  """mean[-exp(log_alpha) (log pi + target_entropy)]; log_prob [B]."""
  return (-jnp.exp(log_alpha) * (log_prob + target_entropy)).mean()


def _update(state: SACState, batch: dict[str, Array],
            rng: Array) -> tuple[SACState, dict[str, Array]]:
  """One SAC update; batch: obs, next_obs [B, D], action [B, A], reward,
  is_terminal [B]."""
  config = state.config
  actor, critic = state.actor, state.critic
  next_key, pi_key = jax.random.split(rng)
  alpha = jnp.exp(state.log_alpha)

  next_action, next_log_prob = actor.apply(
      {'params': state.actor_params}, batch['next_obs'], next_key,
      method='sample')
  next_q1, next_q2 = critic.apply({'params': state.target_critic_params},
                                  batch['next_obs'], next_action)
  target = jax.lax.stop_gradient(
      td_target(batch['reward'], batch['is_terminal'], next_q1, next_q2,
                next_log_prob, alpha, config.discount))

  def critic_loss_fn(params):
    q1, q2 = critic.apply({'params': params}, batch['obs'], batch['action'])
    return critic_loss(q1, q2, target), q1

  def actor_loss_fn(params):
    action, log_prob = actor.apply({'params': params}, batch['obs'], pi_key,
                                   method='sample')
    q1, q2 = critic.apply({'params': state.critic_params}, batch['obs'],
                          action)
    return actor_loss(log_prob, q1, q2, jax.lax.stop_gradient(alpha)), log_prob

  def temperature_loss_fn(log_alpha, log_prob):
    return temperature_loss(log_alpha, jax.lax.stop_gradient(log_prob),
                            state.target_entropy)

  (c_loss, q1), c_grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
      state.critic_params)
  (a_loss, log_prob), a_grads = jax.value_and_grad(
      actor_loss_fn, has_aux=True)(state.actor_params)
  t_loss, t_grad = jax.value_and_grad(temperature_loss_fn)(state.log_alpha,
                                                           log_prob)

  actor_tx, critic_tx, temperature_tx = _optimizers(config)
  updates, actor_opt_state = actor_tx.update(a_grads, state.actor_opt_state)
  actor_params = optax.apply_updates(state.actor_params, updates)
  updates, critic_opt_state = critic_tx.update(c_grads, state.critic_opt_state)
  critic_params = optax.apply_updates(state.critic_params, updates)
  updates, temperature_opt_state = temperature_tx.update(
      t_grad, state.temperature_opt_state)
  log_alpha = optax.apply_updates(state.log_alpha, updates)
  target_critic_params = jax.tree.map(
      lambda p, t: config.tau * p + (1.0 - config.tau) * t, critic_params,
      state.target_critic_params)

  new_state = state.replace(
      step=state.step + 1, actor_params=actor_params,
      critic_params=critic_params, target_critic_params=target_critic_params,
      log_alpha=log_alpha, actor_opt_state=actor_opt_state,
      critic_opt_state=critic_opt_state,
      temperature_opt_state=temperature_opt_state)
  metrics = {
      'critic_loss': c_loss,
      'actor_loss': a_loss,
      'temperature_loss': t_loss,
      'alpha': alpha,
      'entropy': -log_prob.mean(),
      'q_mean': q1.mean(),
      'target_q_mean': target.mean(),
      'reward_mean': batch['reward'].mean(),
      'critic_grad_norm': optax.global_norm(c_grads),
      'actor_grad_norm': optax.global_norm(a_grads),
  }
  return new_state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}


update = jax.jit(_update)
update.__doc__ = """`update(state, batch, rng) -> (state, metrics)`, jitted.

batch: obs, next_obs [B, D]; action [B, A]; reward, is_terminal [B] (what
ReplayBuffer.sample_transitions returns). metrics: critic_loss, actor_loss,
temperature_loss, alpha (before the step), entropy, q_mean, target_q_mean,
reward_mean, critic_grad_norm, actor_grad_norm (float32 scalars).
"""


def _act(state: SACState, obs: Array, rng: Array,
         deterministic: bool) -> Array:
  if deterministic:
    return state.actor.apply({'params': state.actor_params}, obs,
                             method='mode')
  return state.actor.apply({'params': state.actor_params}, obs, rng,
                           method='sample')[0]


act = jax.jit(_act, static_argnames='deterministic')
act.__doc__ = """`act(state, obs, rng, deterministic) -> action`, jitted.

obs [D] or [B, D] -> action [A] or [B, A] in (-1, 1): tanh(mean) if
deterministic, else a sample.
"""


def sac_act_fn(state: SACState, deterministic: bool = True):
  """`act_fn(step, key)` for envs.run_episode."""
  return lambda step, key: np.asarray(
      act(state, step['obs'], key, deterministic=deterministic))


def train_sac(env, config: SACConfig, steps: int, *, seed: int = 0,
              state: SACState | None = None,
              buffer: episodes_lib.ReplayBuffer | None = None,
              on_episode: Callable[[episodes_lib.Episode, dict], Any]
              | None = None) -> tuple[SACState, list[episodes_lib.Episode]]:
  """Trains SAC for `steps` agent steps on `env` (an envs.DMCEnv).

  The first `config.random_steps` actions (less the steps already in a given
  `buffer`) are uniform in [-1, 1]; from then on every env step is followed by `config.updates_per_step` updates on
  transitions sampled uniformly from the buffer (episode records, see
  episodes.py; the running episode included).

  Args:
    env: has reset(), step(action), sample_action(rng), obs_dim, action_dim.
    config: hyperparameters.
    steps: agent steps to take (an unfinished last episode is dropped).
    seed: seeds init, action sampling, batch sampling and the env's first
      reset (later resets continue the env's random state).
    state: continue from this state instead of a fresh `init`.
    buffer: continue with this buffer (e.g. restored) instead of a new one.
    on_episode: called after each finished episode as
      on_episode(episode, info), info = {'step': agent steps so far,
      'episode': its index, 'return': its return, 'metrics': the last
      update's metrics as floats ({} before learning starts)}.

  Returns:
    (state, episodes): the final agent and every episode finished here, in
    order (the early ones are random-action episodes).
  """
  key = jax.random.PRNGKey(seed)
  init_key, key = jax.random.split(key)
  if state is None:
    state = init(config, env.obs_dim, env.action_dim, init_key)
  if buffer is None:
    buffer = episodes_lib.ReplayBuffer(config.buffer_capacity, env.action_dim)
  elif buffer.action_dim is None:
    buffer.action_dim = env.action_dim
  # A continued run (state and buffer given) draws fresh randomness and
  # counts the buffer's steps towards the random phase.
  resumed_updates, prior_steps = int(state.step), buffer.num_steps
  rng = np.random.default_rng([seed, resumed_updates])
  act_key, update_key = jax.random.split(jax.random.fold_in(key,
                                                            resumed_updates))
  episodes = []
  metrics: dict[str, Any] = {}
  step = env.reset(seed=seed)  # Chunks of a run start reproducibly.
  buffer.add_step(step)
  start, last_log_t = time.time(), 0
  for t in range(steps):
    learning = prior_steps + t >= config.random_steps
    if not learning:
      action = env.sample_action(rng)
    else:
      action = np.asarray(act(state, step['obs'],
                              jax.random.fold_in(act_key, t),
                              deterministic=False))
    step = env.step(action)
    episode = buffer.add_step(step, action)
    if learning:
      for i in range(config.updates_per_step):
        batch = buffer.sample_transitions(config.batch_size, rng)
        state, metrics = update(
            state, batch,
            jax.random.fold_in(update_key, t * config.updates_per_step + i))
    if episode is not None:
      episodes.append(episode)
      now = time.time()
      info = {'step': t + 1, 'episode': len(episodes) - 1,
              'return': episodes_lib.episode_return(episode),
              'metrics': {k: float(v) for k, v in metrics.items()}}
      logging.info(
          'sac %s step %d episode %d return %.1f (%.0f steps/s) %s',
          getattr(env, 'name', ''), t + 1, info['episode'],
          info['return'], (t + 1 - last_log_t) / max(now - start, 1e-9),
          ' '.join(f'{k}={v:.3g}' for k, v in info['metrics'].items()))
      start, last_log_t = now, t + 1
      if on_episode is not None:
        on_episode(episode, info)
      step = env.reset()
      buffer.add_step(step)
  return state, episodes


def evaluate(env, state: SACState, num_episodes: int, seed: int = 0,
             deterministic: bool = True) -> list[float]:
  """Returns of `num_episodes` episodes of the (deterministic) policy."""
  return [
      episodes_lib.episode_return(episodes_lib.run_episode(
          env, sac_act_fn(state, deterministic), seed + i))
      for i in range(num_episodes)
  ]
