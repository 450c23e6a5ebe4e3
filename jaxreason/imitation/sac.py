"""Soft actor-critic on state observations (Haarnoja et al. 2018, v2).

  sac = SAC(SACConfig(), action_dim)
  state, shardings = sac.init_state(obs_dim, jax.random.key(0), mesh)
  update = sac.make_update(shardings, mesh)   # train.step.make_train_step
  state, metrics = update(state, batch, rng)  # jitted, pure, donates state
  action = act(sac, state.params['actor'], obs, rng, deterministic=False)
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
temperature loss are constants (stop_gradient).

The state is the shared `train.state.TrainState` with parameter groups
(`ParamGroups`), and the update is `train.step.make_train_step` (jitted with
explicit shardings, the state donated):

  actor          tanh-Gaussian policy               Adam(actor_lr)
  critic         twin Q-functions                   Adam(critic_lr)
  log_alpha      log temperature, float32 []        Adam(temperature_lr)
  target_critic  Polyak average of the critic       no optimiser

One step differentiates the *sum* of the three losses over the groups
('actor', 'critic', 'log_alpha'), then `SAC.after_update` moves the target
critic towards the new critic. The sum gives each group exactly the gradient
of its own loss at the pre-update parameters, because the losses touch other
groups only through constants: y is a stop_gradient (no gradient to the actor
or alpha through a' and the soft value), the actor loss reads
stop_gradient(critic params) and stop_gradient(alpha) (its gradient reaches
the critic's *input* a~ and through it the actor only), the temperature loss
reads stop_gradient(log pi), and the critic loss depends on nothing else.
Each group has its own Adam, so the step is the three separate updates of
the original three-optimiser SAC. `make_train_step` folds `state.step` into
the step's rng; the loss splits that into (key for a', key for a~) with
jax.random.split.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from jaxreason.imitation import episodes as episodes_lib
from jaxreason.imitation import networks
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train.state import ParamGroups, TrainState, create_train_state
from jaxreason.train.state import abstract_train_state
from jaxreason.train.step import batch_sharding, make_train_step

Array = jax.Array
GROUPS = ('actor', 'critic', 'log_alpha')  # Trained by the update.


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


def single_device_mesh() -> Mesh:
  """The default mesh of `train_sac`: these networks are small."""
  return mesh_lib.make_mesh(mesh_lib.DEFAULT_MESH, devices=jax.devices()[:1])


@functools.lru_cache(maxsize=None)
def _optimisers(config: SACConfig) -> ParamGroups:
  """Three Adams; the same objects for equal configs, because the optimiser
  is static state metadata, which a jitted step's shardings must match."""
  return ParamGroups(actor=optax.adam(config.actor_lr),
                     critic=optax.adam(config.critic_lr),
                     log_alpha=optax.adam(config.temperature_lr))


@dataclasses.dataclass(frozen=True)
class SAC:
  """SAC's static part (hashable): hyperparameters, networks and its step."""

  config: SACConfig
  action_dim: int

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

  def init_params(self, obs_dim: int, rng: Array) -> dict[str, Any]:
    """Fresh groups (module docstring); the target critic equals the critic."""
    k_actor, k_critic = jax.random.split(rng)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    action = jnp.zeros((1, self.action_dim), jnp.float32)
    critic = self.critic.init(k_critic, obs, action)['params']
    return {
        'actor': self.actor.init(k_actor, obs)['params'],
        'critic': critic,
        'target_critic': jax.tree.map(jnp.copy, critic),
        'log_alpha': jnp.full((), np.log(self.config.init_temperature),
                              jnp.float32),
    }

  def optimisers(self) -> ParamGroups:
    return _optimisers(self.config)

  def _abstract(self, obs_dim: int, mesh: Mesh, rng: Array | None = None):
    rng = jax.random.PRNGKey(0) if rng is None else rng
    return (lambda r: self.init_params(obs_dim, r),
            lambda _: self.optimisers(), rng, mesh, rules_lib.DEFAULT_RULES)

  def init_state(self, obs_dim: int, rng: Array, mesh: Mesh
                 ) -> tuple[TrainState, TrainState]:
    """(state, shardings): a fresh TrainState of the groups, replicated."""
    return create_train_state(*self._abstract(obs_dim, mesh, rng))

  def state_shardings(self, obs_dim: int, mesh: Mesh) -> TrainState:
    return abstract_train_state(*self._abstract(obs_dim, mesh))[1]

  def loss_fn(self, params: dict[str, Any], batch: dict[str, Array],
              rng: Array, frozen: Any = None
              ) -> tuple[Array, dict[str, Array]]:
    """critic + actor + temperature loss (module docstring) and metrics.

    batch: obs, next_obs [B, D], action [B, A], reward, is_terminal [B].
    """
    del frozen
    actor, critic = self.actor, self.critic
    next_key, pi_key = jax.random.split(rng)
    alpha = jnp.exp(params['log_alpha'])

    next_action, next_log_prob = actor.apply(
        {'params': params['actor']}, batch['next_obs'], next_key,
        method='sample')
    next_q1, next_q2 = critic.apply({'params': params['target_critic']},
                                    batch['next_obs'], next_action)
    target = jax.lax.stop_gradient(
        td_target(batch['reward'], batch['is_terminal'], next_q1, next_q2,
                  next_log_prob, alpha, self.config.discount))  # [B]

    q1, q2 = critic.apply({'params': params['critic']}, batch['obs'],
                          batch['action'])
    c_loss = critic_loss(q1, q2, target)

    action, log_prob = actor.apply({'params': params['actor']}, batch['obs'],
                                   pi_key, method='sample')
    pi_q1, pi_q2 = critic.apply(
        {'params': jax.lax.stop_gradient(params['critic'])}, batch['obs'],
        action)
    a_loss = actor_loss(log_prob, pi_q1, pi_q2, jax.lax.stop_gradient(alpha))

    t_loss = temperature_loss(params['log_alpha'],
                              jax.lax.stop_gradient(log_prob),
                              self.target_entropy)
    metrics = {
        'critic_loss': c_loss,
        'actor_loss': a_loss,
        'temperature_loss': t_loss,
        'alpha': alpha,
        'entropy': -log_prob.mean(),
        'q_mean': q1.mean(),
        'target_q_mean': target.mean(),
        'reward_mean': batch['reward'].mean(),
    }
    return c_loss + a_loss + t_loss, metrics

  def after_update(self, state: TrainState, metrics: dict) -> TrainState:
    """Qbar <- tau Q + (1 - tau) Qbar, from the critic after its step."""
    del metrics
    tau = self.config.tau
    params = dict(state.params)
    params['target_critic'] = jax.tree.map(
        lambda p, t: tau * p + (1.0 - tau) * t, params['critic'],
        params['target_critic'])
    return state.replace(params=params)

  def make_update(self, shardings: TrainState, mesh: Mesh,
                  donate: bool = True) -> Callable[..., tuple[TrainState,
                                                              dict]]:
    """`update(state, batch, rng) -> (state, metrics)` on the training core.

    batch: obs, next_obs [B, D]; action [B, A]; reward, is_terminal [B] (what
    ReplayBuffer.sample_transitions returns; B divisible by the mesh's batch
    axes). metrics (float32 scalars): critic_loss, actor_loss,
    temperature_loss, alpha (before the step), entropy, q_mean,
    target_q_mean, reward_mean; from the core loss (the sum of the three),
    grad_norm, param_norm and grad_norm/{actor,critic,log_alpha}.
    """
    return make_train_step(self.loss_fn, shardings, mesh, groups=GROUPS,
                           after_update=self.after_update,
                           group_grad_norms=True, donate=donate)


@functools.lru_cache(maxsize=8)
def _update_for(sac: SAC, obs_dim: int, mesh: Mesh):
  """One compiled update per (agent, observation size, mesh) and process."""
  return sac.make_update(sac.state_shardings(obs_dim, mesh), mesh)


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


def _act(sac: SAC, actor_params: Any, obs: Array, rng: Array,
         deterministic: bool) -> Array:
  if deterministic:
    return sac.actor.apply({'params': actor_params}, obs, method='mode')
  return sac.actor.apply({'params': actor_params}, obs, rng,
                         method='sample')[0]


act = jax.jit(_act, static_argnames=('sac', 'deterministic'))
act.__doc__ = """`act(sac, actor_params, obs, rng, deterministic) -> action`.

Jitted; actor_params is `state.params['actor']`. obs [D] or [B, D] -> action
[A] or [B, A] in (-1, 1): tanh(mean) if deterministic, else a sample.
"""


def sac_act_fn(sac: SAC, state: TrainState, deterministic: bool = True):
  """`act_fn(step, key)` for envs.run_episode."""
  actor_params = state.params['actor']
  return lambda step, key: np.asarray(
      act(sac, actor_params, step['obs'], key, deterministic=deterministic))


def train_sac(env, config: SACConfig, steps: int, *, seed: int = 0,
              state: TrainState | None = None,
              buffer: episodes_lib.ReplayBuffer | None = None,
              on_episode: Callable[[episodes_lib.Episode, dict], Any]
              | None = None, mesh: Mesh | None = None
              ) -> tuple[TrainState, list[episodes_lib.Episode]]:
  """Trains SAC for `steps` agent steps on `env` (an envs.DMCEnv).

  The first `config.random_steps` actions (less the steps already in a given
  `buffer`) are uniform in [-1, 1]; from then on every env step is followed
  by `config.updates_per_step` updates on transitions sampled uniformly from
  the buffer (episode records, see episodes.py; the running episode
  included). The update is `SAC.make_update`, compiled once per process for
  a given config, observation size and mesh.

  Args:
    env: has reset(), step(action), sample_action(rng), obs_dim, action_dim.
    config: hyperparameters.
    steps: agent steps to take (an unfinished last episode is dropped).
    seed: seeds init, action sampling, batch sampling and the env's first
      reset (later resets continue the env's random state).
    state: continue from this state (`SAC.init_state`'s, placed on `mesh`)
      instead of a fresh one. It is donated to the update: use the returned
      state.
    buffer: continue with this buffer (e.g. restored) instead of a new one.
    on_episode: called after each finished episode as
      on_episode(episode, info), info = {'step': agent steps so far,
      'episode': its index, 'return': its return, 'metrics': the last
      update's metrics as floats ({} before learning starts)}.
    mesh: where the state lives and the batch is split (over its batch
      axes); default one device.

  Returns:
    (state, episodes): the final agent and every episode finished here, in
    order (the early ones are random-action episodes).
  """
  sac = SAC(config, env.action_dim)
  mesh = single_device_mesh() if mesh is None else mesh
  key = jax.random.PRNGKey(seed)
  init_key, key = jax.random.split(key)
  if state is None:
    state, _ = sac.init_state(env.obs_dim, init_key, mesh)
  update = _update_for(sac, env.obs_dim, mesh)
  batch_sh = batch_sharding(mesh)
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
      action = np.asarray(act(sac, state.params['actor'], step['obs'],
                              jax.random.fold_in(act_key, t),
                              deterministic=False))
    step = env.step(action)
    episode = buffer.add_step(step, action)
    if learning:
      for i in range(config.updates_per_step):
        batch = buffer.sample_transitions(config.batch_size, rng)
        state, metrics = update(
            state, jax.device_put(batch, batch_sh),
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


def evaluate(env, sac: SAC, state: TrainState, num_episodes: int,
             seed: int = 0, deterministic: bool = True) -> list[float]:
  """Returns of `num_episodes` episodes of the (deterministic) policy."""
  return [
      episodes_lib.episode_return(episodes_lib.run_episode(
          env, sac_act_fn(sac, state, deterministic), seed + i))
      for i in range(num_episodes)
  ]
