"""The world-model stages of the imitation study: pretrain, AIME, AIME-v2.

  pretrain  a world model on the embodiment data (actions known), or with
            `dataset='demos'` an action-free model of the demonstrations
            (the source of AIME-v2's surrogate reward).
  aime      AIME (offline, zero-shot): the world model frozen, a policy on
            its features maximises the demonstrations' evidence.
  aime_v2   AIME-v2 (online): each iteration collects an episode with the
            policy, then takes `updates_per_episode` rounds of
              world-model step  on half embodiment data (the regulariser),
                                half online replay, plus the reward head
                                regressed on the surrogate reward;
              policy step       aime_weight * AIME loss on demos
                                + actor_weight * imagination actor loss
                                + entropy bonus (in the actor loss);
              value step        lambda-return regression, EMA target.
            Ablations: `regulariser=False` (online data only),
            `reward='none'` (no imagination term), `reward='adversarial'`
            (a discriminator on embeddings instead of the surrogate reward).

Each jitted step takes its batch sharded over the mesh's 'data' axis with
parameters replicated, so the same code runs data-parallel on a pod.
Agents act by filtering their observations with the world model (posterior
state) and applying the policy to its features.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any

from absl import logging
import flax
from flax import serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxreason.imitation import aime
from jaxreason.imitation import episodes as ep_lib
from jaxreason.imitation import networks
from jaxreason.imitation import stages
from jaxreason.models.world_model import world_model as wm_lib
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.train import checkpoint as ckpt_lib
from jaxreason.train import metrics as metrics_lib
from jaxreason.train import plots

Array = jax.Array
P = jax.sharding.PartitionSpec


# --- Parameters on disk -------------------------------------------------------

def save_model(directory: str, name: str, params: Any, meta: dict) -> None:
  """params as msgpack + meta as JSON, each written atomically."""
  os.makedirs(directory, exist_ok=True)
  for suffix, data in (('.msgpack', serialization.msgpack_serialize(
      jax.device_get(params))), ('.json', json.dumps(meta, indent=1).encode())):
    tmp = os.path.join(directory, f'.{name}{suffix}.tmp')
    with open(tmp, 'wb') as f:
      f.write(data)
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


def _config_from_meta(meta: dict) -> wm_lib.WorldModelConfig:
  return wm_lib.WorldModelConfig(**meta['world_model'])


# --- Batches ------------------------------------------------------------------

def sample_batch(episodes, batch_size: int, length: int,
                 rng: np.random.Generator, keys=('obs', 'action', 'is_first')
                 ) -> dict[str, np.ndarray]:
  """Windows [B, L, ..]; every window starts a fresh filter (is_first[:, 0])."""
  batch = ep_lib.sample_sequences(episodes, batch_size, length, rng, keys)
  batch['is_first'] = batch['is_first'].copy()
  batch['is_first'][:, 0] = True
  return batch


class Sharder:
  """Places batches on the mesh's 'data' axis and parameters replicated."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.mesh = mesh_lib.make_mesh(config.mesh)
    self.batch = jax.sharding.NamedSharding(self.mesh, P('data'))
    self.replicated = jax.sharding.NamedSharding(self.mesh, P())

  def put_batch(self, batch):
    return jax.device_put(batch, self.batch)

  def put_params(self, tree):
    return jax.device_put(tree, self.replicated)


# --- Optimisation -------------------------------------------------------------

@flax.struct.dataclass
class Learner:
  params: Any
  opt_state: Any


def make_opt(lr: float, clip: float = 100.0) -> optax.GradientTransformation:
  return optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr, eps=1e-5))


def _apply(opt, learner: Learner, grads) -> Learner:
  updates, opt_state = opt.update(grads, learner.opt_state, learner.params)
  return Learner(optax.apply_updates(learner.params, updates), opt_state)


# --- Agent: filter with the world model, act with the policy --------------------

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


# --- Stage: pretrain ------------------------------------------------------------

def run_pretrain(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """World model on embodiment data (or action-free on demos)."""
  embodiment, demos, info = stages.load_data(config, workdir)
  env = stages.make_env(config)
  on_demos = config.dataset == 'demos'
  data = demos if on_demos else embodiment
  cfg = wm_config(config, env, action_free=on_demos)
  model = wm_lib.WorldModel(cfg)
  sharder = Sharder(config)
  keys = ('obs', 'is_first') if on_demos else ('obs', 'action', 'is_first')
  rng = np.random.default_rng(config.seed)
  batch0 = sample_batch(data, config.batch_size, config.seq_len, rng, keys)
  key = jax.random.key(config.seed)
  params = model.init(key, batch0['obs'][:1], None if on_demos else
                      batch0['action'][:1], batch0['is_first'][:1], key)
  opt = make_opt(config.wm_lr)
  learner = sharder.put_params(Learner(params, opt.init(params)))
  loss_fn = wm_lib.make_world_model_loss(
      model, free_nats=config.free_nats, kl_balance=config.kl_balance)

  @jax.jit
  def step(learner, batch, rng):
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        learner.params, batch, rng)
    metrics['grad_norm'] = optax.global_norm(grads)
    return _apply(opt, learner, grads), metrics

  # Checkpointed as {'step', 'learner'}; a killed run resumes.
  ckpt = ckpt_lib.Checkpointer(os.path.join(workdir, 'checkpoints'),
                               save_every=config.checkpoint_every)
  start = ckpt.latest_step() or 0
  if start:
    restored, _ = ckpt.restore({'learner': learner})
    learner = sharder.put_params(restored['learner'])
  writer = metrics_lib.MetricWriter(workdir)
  t0, metrics = time.time(), {}
  for i in range(start, config.total_steps):
    batch = sharder.put_batch(sample_batch(data, config.batch_size,
                                           config.seq_len, rng, keys))
    learner, metrics = step(learner, batch, jax.random.fold_in(key, i))
    if (i + 1) % config.log_every == 0 or i + 1 == config.total_steps:
      values = writer.write(i + 1, {k: float(v) for k, v in metrics.items()})
      rate = (i + 1 - start) / max(time.time() - t0, 1e-9)
      logging.info('pretrain %s step %d/%d | loss %.3f recon %.3f kl %.3f | '
                   '%.1f steps/s | ETA %.0f s', config.dataset, i + 1,
                   config.total_steps, values['loss'], values['recon'],
                   values['kl'], rate, (config.total_steps - i - 1) / rate)
    ckpt.save(i + 1, {'learner': learner}, force=i + 1 == config.total_steps)
  ckpt.close()
  writer.close()
  meta = {'world_model': dataclasses.asdict(cfg), 'task': config.task,
          'dataset': config.dataset, 'steps': config.total_steps}
  save_model(workdir, 'world_model', learner.params, meta)
  result = {'final_metrics': {k: float(v) for k, v in metrics.items()},
            **meta}
  stages.write_result(workdir, result)
  return result


# --- Policy evaluation ----------------------------------------------------------

def evaluate_agent(config, env, agent: Agent, wm_params, pol_params,
                   demo_return: float) -> dict:
  wm_params = jax.device_get(wm_params)
  pol_params = jax.device_get(pol_params)
  returns = stages.evaluate(
      env, lambda: agent.act_fn(wm_params, pol_params, True),
      config.eval_episodes, 20_000)
  return stages.eval_summary(returns, demo_return)


def _load_world_model(path: str, what: str):
  if not path:
    return None, None
  params, meta = load_model(path, 'world_model')
  logging.info('%s world model from %s (%s)', what, path, meta['dataset'])
  return params, _config_from_meta(meta)


def _init_world_model(config, env, action_free: bool, key):
  cfg = wm_config(config, env, action_free=action_free)
  model = wm_lib.WorldModel(cfg)
  obs = jnp.zeros((1, 2, env.obs_dim))
  act = None if action_free else jnp.zeros((1, 2, env.action_dim))
  params = model.init(key, obs, act, jnp.ones((1, 2), bool), key)
  return params, cfg


# --- Stage: AIME (offline) --------------------------------------------------------

def run_aime(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """AIME: the policy maximises the demos' ELBO under the frozen model."""
  _, demos, info = stages.load_data(config, workdir)
  env = stages.make_env(config, seed_offset=1)
  key = jax.random.key(config.seed)
  wm_params, cfg = _load_world_model(config.world_model_dir, 'embodiment')
  if wm_params is None:  # ':debug' only.
    logging.warning('config.world_model_dir is empty: a random world model')
    wm_params, cfg = _init_world_model(config, env, False, key)
  agent = Agent(cfg, tuple(config.policy_hidden))
  sharder = Sharder(config)
  opt = make_opt(config.policy_lr)
  pol = agent.init_policy(jax.random.fold_in(key, 1))
  learner = sharder.put_params(Learner(pol, opt.init(pol)))
  wm_params = sharder.put_params(wm_params)

  @jax.jit
  def step(learner, wm_params, batch, rng):
    def loss_fn(p):
      return aime.aime_loss(wm_params, p, agent.wm, agent.policy_fn,
                            batch['obs'], batch['is_first'], rng,
                            free_nats=config.aime_free_nats,
                            action_entropy_weight=config.action_entropy_weight)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        learner.params)
    metrics['grad_norm'] = optax.global_norm(grads)
    return _apply(opt, learner, grads), metrics

  rng = np.random.default_rng(config.seed)
  writer = metrics_lib.MetricWriter(workdir)
  curve, metrics, t0 = [], {}, time.time()
  for i in range(config.total_steps):
    batch = sharder.put_batch(sample_batch(demos, config.batch_size,
                                           config.seq_len, rng,
                                           ('obs', 'is_first')))
    learner, metrics = step(learner, wm_params, batch,
                            jax.random.fold_in(key, i))
    scalars = {k: float(v) for k, v in metrics.items()}
    if (i + 1) % config.eval_every == 0 or i + 1 == config.total_steps:
      ev = evaluate_agent(config, env, agent, wm_params, learner.params,
                          info['demo_return'])
      curve.append({'step': i + 1, **ev})
      scalars['normalised_return'] = ev['normalised_return']
      logging.info('aime step %d/%d | loss %.3f | return %.1f (normalised '
                   '%.3f) | %.1f steps/s', i + 1, config.total_steps,
                   scalars['loss'], ev['return'], ev['normalised_return'],
                   (i + 1) / (time.time() - t0))
    if (i + 1) % config.log_every == 0 or i + 1 == config.total_steps:
      writer.write(i + 1, scalars)
  writer.close()
  save_model(workdir, 'policy', learner.params, {'stage': 'aime'})
  result = {'final_metrics': {k: float(v) for k, v in metrics.items()},
            'eval': curve[-1], 'curve': curve,
            'demo_return': info['demo_return']}
  stages.write_result(workdir, result)
  return result


# --- Stage: AIME-v2 (online) --------------------------------------------------------

@flax.struct.dataclass
class OnlineState:
  """Everything AIME-v2 checkpoints (with the replay buffer beside it)."""
  step: Array  # int32 []: episodes collected and trained on.
  wm: Learner
  policy: Learner
  value: Learner
  target_value: Any
  disc: Learner | None
  return_scale: Array  # float32 []: the actor's return scale (DreamerV3).


class ValueNet(flax.linen.Module):
  hidden: tuple[int, ...]

  @flax.linen.compact
  def __call__(self, feats):
    return networks.MLP((*self.hidden, 1), activation=flax.linen.elu)(
        feats)[..., 0]


def run_aime_v2(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """AIME-v2's online loop (see the module docstring)."""
  embodiment, demos, info = stages.load_data(config, workdir)
  env = stages.make_env(config, seed_offset=2)
  eval_env = stages.make_env(config, seed_offset=3)
  key = jax.random.key(config.seed)
  sharder = Sharder(config)
  wm_params, cfg = _load_world_model(config.world_model_dir, 'embodiment')
  if wm_params is None:
    logging.warning('config.world_model_dir is empty: a random world model')
    wm_params, cfg = _init_world_model(config, env, False, key)
  agent = Agent(cfg, tuple(config.policy_hidden))
  model = agent.model
  use_surrogate = config.reward == 'surrogate'
  use_adversarial = config.reward == 'adversarial'
  demo_wm, demo_params = None, None
  if use_surrogate:
    demo_params, demo_cfg = _load_world_model(config.demo_model_dir, 'demo')
    if demo_params is None:
      logging.warning('config.demo_model_dir is empty: a random demo model')
      demo_params, demo_cfg = _init_world_model(config, env, True, key)
    demo_wm = wm_lib.world_model_fns(wm_lib.WorldModel(demo_cfg))
    demo_params = sharder.put_params(demo_params)
  value_net = ValueNet(tuple(config.value_hidden))
  disc_net = ValueNet(tuple(config.value_hidden))
  value_fn = lambda p, f: value_net.apply({'params': p}, f)
  disc_fn = lambda p, e: disc_net.apply({'params': p}, e)

  wm_opt, pol_opt = make_opt(config.wm_lr), make_opt(config.policy_lr)
  val_opt, disc_opt = make_opt(config.value_lr), make_opt(config.value_lr)
  feats0 = jnp.zeros((1, cfg.feature_dim))
  if config.init_policy_dir:  # E.g. the offline AIME policy: fine-tune it.
    pol, _ = load_model(config.init_policy_dir, 'policy')
    logging.info('aime_v2: policy from %s', config.init_policy_dir)
  else:
    pol = agent.init_policy(jax.random.fold_in(key, 1))
  val = value_net.init(jax.random.fold_in(key, 2), feats0)['params']
  disc = None
  if use_adversarial:
    d = disc_net.init(jax.random.fold_in(key, 3),
                      jnp.zeros((1, cfg.embed_dim)))['params']
    disc = Learner(d, disc_opt.init(d))
  state = OnlineState(
      step=jnp.zeros((), jnp.int32), wm=Learner(wm_params,
                                                wm_opt.init(wm_params)),
      policy=Learner(pol, pol_opt.init(pol)), value=Learner(val,
                                                            val_opt.init(val)),
      target_value=val, disc=disc,
      return_scale=jnp.zeros((), jnp.float32))
  state = sharder.put_params(state)
  wm_loss_fn = wm_lib.make_world_model_loss(
      model, free_nats=config.free_nats, kl_balance=config.kl_balance)

  @jax.jit
  def wm_step(state, batch, rng):
    """World model (+ reward head on the surrogate reward) and discriminator."""
    k_loss, k_rew, k_feat = jax.random.split(rng, 3)

    def loss_fn(p):
      loss, m = wm_loss_fn(p, batch, k_loss)
      if use_surrogate:
        targets = aime.surrogate_reward(demo_params, demo_wm, batch['obs'],
                                        batch['is_first'], k_rew)
        post, _ = aime.observe(agent.wm, p, batch['obs'], batch['action'],
                               batch['is_first'], k_feat)
        feats = jax.lax.stop_gradient(agent.wm.features(post))
        r_loss, r_m = aime.reward_head_loss(p, agent.wm, feats, targets)
        loss = loss + r_loss
        m = dict(m, **r_m)
      return loss, m

    (loss, m), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.wm.params)
    m = dict(m, loss=loss, wm_grad_norm=optax.global_norm(grads))
    new = state.replace(wm=_apply(wm_opt, state.wm, grads))
    return new, m

  @jax.jit
  def disc_step(state, demo_obs, online_obs, rng):
    e_demo = agent.wm.encode(state.wm.params, demo_obs)
    e_pol = agent.wm.encode(state.wm.params, online_obs)
    flat = lambda e: jax.lax.stop_gradient(e.reshape(-1, e.shape[-1]))
    (loss, m), grads = jax.value_and_grad(
        aime.discriminator_loss, has_aux=True)(
            state.disc.params, disc_fn, flat(e_demo), flat(e_pol), rng)
    return state.replace(disc=_apply(disc_opt, state.disc, grads)), m

  @jax.jit
  def agent_step(state, batch, demo_batch, rng):
    """Policy (AIME term + imagination actor) and value; EMA target."""
    k_aime, k_obs, k_ac = jax.random.split(rng, 3)
    wm_p = jax.lax.stop_gradient(state.wm.params)
    post, _ = aime.observe(agent.wm, wm_p, batch['obs'], batch['action'],
                           batch['is_first'], k_obs)
    start = aime.flatten_states(post)
    n = min(config.imagination_starts, start.deter.shape[0])
    idx = jax.random.permutation(k_obs, start.deter.shape[0])[:n]
    start = jax.tree.map(lambda x: x[idx], start)
    reward_fn = None
    if use_adversarial:
      # Discriminator on the decoded observation's embedding.
      reward_fn = lambda f: aime.adversarial_reward(
          state.disc.params, disc_fn,
          agent.wm.encode(wm_p, model.apply(wm_p, f, method='decode')))

    def loss_fn(pv):
      pol_p, val_p = pv
      loss = jnp.zeros(())
      m = {}
      if config.aime_weight > 0:
        a_loss, a_m = aime.aime_loss(
            wm_p, pol_p, agent.wm, agent.policy_fn, demo_batch['obs'],
            demo_batch['is_first'], k_aime, free_nats=config.aime_free_nats,
            action_entropy_weight=config.action_entropy_weight)
        loss = loss + config.aime_weight * a_loss
        m.update({f'aime/{k}': v for k, v in a_m.items()})
      if config.reward != 'none':
        ac_loss, ac_m = aime.actor_critic_losses(
            wm_p, pol_p, val_p, state.target_value, agent.wm,
            agent.policy_fn, value_fn, start, k_ac,
            horizon=config.horizon, gamma=config.gamma,
            lambda_=config.lambda_, actor_weight=config.actor_weight,
            value_weight=1.0, entropy_weight=config.entropy_weight,
            reward_fn=reward_fn,
            return_scale=(state.return_scale if config.return_norm
                          else None),
            scale_decay=config.return_norm_decay,
            scale_floor=config.return_norm_floor)
        loss = loss + ac_loss
        m.update({f'ac/{k}': v for k, v in ac_m.items()})
      return loss, m

    (loss, m), (g_pol, g_val) = jax.value_and_grad(loss_fn, has_aux=True)(
        (state.policy.params, state.value.params))
    value = _apply(val_opt, state.value, g_val)
    new = state.replace(
        policy=_apply(pol_opt, state.policy, g_pol), value=value,
        target_value=aime.ema_update(state.target_value, value.params,
                                     config.target_tau),
        return_scale=m.get('ac/return_scale', state.return_scale))
    return new, dict(m, agent_loss=loss, policy_grad_norm=optax.global_norm(
        g_pol))

  # Resume: checkpoint (state) + online replay buffer.
  ckpt = ckpt_lib.Checkpointer(os.path.join(workdir, 'checkpoints'),
                               save_every=config.checkpoint_every)
  buffer = ep_lib.ReplayBuffer(None, env.action_dim)
  buffer_dir = os.path.join(workdir, 'replay')
  start = ckpt.latest_step() or 0
  curve = []
  if start:
    restored, extra = ckpt.restore(state)
    state = sharder.put_params(restored)
    buffer.restore(buffer_dir)
    curve = (extra or {}).get('curve', [])
    logging.info('aime_v2: resumed at episode %d with %d online episodes',
                 start, len(buffer))
  writer = metrics_lib.MetricWriter(workdir)
  rng = np.random.default_rng([config.seed, start])
  half = config.batch_size // 2 if config.regulariser else 0
  t0, metrics = time.time(), {}
  for it in range(start, config.total_steps):
    # 1. Collect an episode with the current (sampling) policy.
    act = agent.act_fn(jax.device_get(state.wm.params),
                       jax.device_get(state.policy.params), False)
    episode = ep_lib.run_episode(env, act, config.seed * 100_000 + it)
    buffer.add(episode)
    # 2. Train.
    for u in range(config.updates_per_episode):
      k = jax.random.fold_in(jax.random.fold_in(key, it), u)
      online = sample_batch(buffer.episodes, config.batch_size - half,
                            config.seq_len, rng)
      if half:
        emb = sample_batch(embodiment, half, config.seq_len, rng)
        online = {n: np.concatenate([emb[n], online[n]]) for n in online}
      batch = sharder.put_batch(online)
      demo_batch = sharder.put_batch(sample_batch(
          demos, config.batch_size, config.seq_len, rng, ('obs', 'is_first')))
      state, m_wm = wm_step(state, batch, jax.random.fold_in(k, 0))
      m_disc = {}
      if use_adversarial:
        state, m_disc = disc_step(state, demo_batch['obs'], batch['obs'],
                                  jax.random.fold_in(k, 1))
      state, m_ag = agent_step(state, batch, demo_batch,
                               jax.random.fold_in(k, 2))
    state = state.replace(step=jnp.asarray(it + 1, jnp.int32))
    metrics = {**{f'wm/{k}': v for k, v in m_wm.items()}, **m_ag,
               **{f'disc/{k}': v for k, v in m_disc.items()}}
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    metrics['loss'] = metrics['agent_loss']
    metrics['train_return'] = ep_lib.episode_return(episode)
    env_steps = (it + 1) * ep_lib.episode_length(episode) * config.action_repeat
    if (it + 1) % config.eval_every == 0 or it + 1 == config.total_steps:
      ev = evaluate_agent(config, eval_env, agent, state.wm.params,
                          state.policy.params, info['demo_return'])
      curve.append({'episode': it + 1, 'env_steps': env_steps, **ev})
      metrics['normalised_return'] = ev['normalised_return']
      metrics['eval_return'] = ev['return']
    writer.write(it + 1, metrics)
    rate = (it + 1 - start) / max(time.time() - t0, 1e-9)
    logging.info('aime_v2 %s episode %d/%d | train return %.1f | %s | '
                 '%.2f episodes/min | ETA %.0f s', config.task, it + 1,
                 config.total_steps, metrics['train_return'],
                 f"eval normalised {curve[-1]['normalised_return']:.3f}"
                 if curve else '', 60 * rate,
                 (config.total_steps - it - 1) / rate)
    buffer.save(buffer_dir)
    ckpt.save(it + 1, state, force=it + 1 == config.total_steps,
              extra={'curve': curve})
  ckpt.close()
  writer.close()
  save_model(workdir, 'policy', state.policy.params, {'stage': 'aime_v2'})
  if jax.process_index() == 0:
    plots.plot_learning_curves(workdir, keys=('normalised_return',
                                              'train_return', 'loss'))
  result = {'final_metrics': metrics, 'eval': curve[-1] if curve else None,
            'curve': curve, 'demo_return': info['demo_return']}
  stages.write_result(workdir, result)
  return result
