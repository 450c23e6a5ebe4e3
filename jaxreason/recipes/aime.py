"""World-model imitation from observation: the study's stages, one trainer.

  from jaxreason.recipes import aime
  from jaxreason.file_modules import load_config
  result = aime.train(load_config('configs/aime/pretrain.py', 'debug'), '/tmp/wm')

`train(config, workdir)` runs `config.stage`, each a loop on the shared
training stack (`train.state.TrainState`, `train.step.make_train_step`: a
jitted step with explicit shardings and donation, `train.run_context.RunContext`:
checkpoints, metrics, progress, SIGTERM). Every stage resumes where a killed
run stopped when run again with the same workdir:

  expert    SAC on states in chunks (its replay buffer saved beside each
            checkpoint), then the datasets: demos of the trained agent and
            task-agnostic embodiment data (`embodiment_policy`).
  bco       BCO(0): an inverse model on embodiment data labels the demos,
            a policy clones them; BC with the demos' true actions beside it.
  pretrain  a world model on the embodiment data (or, dataset='demos', the
            action-free demo model of AIME-v2's surrogate reward).
  aime      AIME: a policy maximises the demos' evidence under the frozen
            world model (Zhang et al., 2023).
  aime_v2   AIME-v2 (Zhang et al., 2025), online: per episode collect with
            the policy, then `updates_per_episode` rounds of world-model
            step (half embodiment data, half replay; reward head on the
            surrogate reward), [discriminator step,] agent step (AIME term +
            imagination actor-critic).

Each writes workdir/result.json with evaluation returns normalised by the
demonstrations' mean return.
"""

from __future__ import annotations

from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxreason.imitation import agent as agent_lib
from jaxreason.imitation import bco as bco_lib
from jaxreason.imitation import data as data_lib
from jaxreason.imitation import episodes as ep_lib
from jaxreason.imitation import objectives
from jaxreason.imitation import sac as sac_lib
from jaxreason.models.world_model import world_model as wm_lib
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train import optim, plots, run_context
from jaxreason.train.state import ParamGroups, state_from_params
from jaxreason.train.step import batch_sharding, make_train_step

STAGES = ('expert', 'bco', 'pretrain', 'aime', 'aime_v2')


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs `config.stage` in workdir (resuming it); returns its result."""
  if config.stage == 'expert':
    result = train_expert(config, workdir)
  elif config.stage == 'bco':
    result = train_bco(config, workdir)
  elif config.stage == 'pretrain':
    result = train_pretrain(config, workdir)
  elif config.stage == 'aime':
    result = train_aime(config, workdir)
  elif config.stage == 'aime_v2':
    result = train_aime_v2(config, workdir)
  else:
    raise ValueError(f'config.stage={config.stage!r}; expected one of '
                     f'{list(STAGES)}')
  data_lib.write_result(workdir, result)
  return result


# --- Shared pieces -----------------------------------------------------------

def adam(lr: float, **kw) -> Any:
  """Adam (eps 1e-5) with gradients clipped at global norm 100 (Dreamer)."""
  cfg = dict(name='adamw', lr=lr, eps=1e-5, clip_norm=100.0, weight_decay=0.0)
  return optim.make_optimizer({**cfg, **kw})[0]


def new_state(params: dict, optimisers: dict, mesh, rules):
  """TrainState of param groups (replicated: these models are small)."""
  return state_from_params(params, lambda _: params,
                           lambda _: ParamGroups(optimisers), mesh, rules)


def batch_rng(config, step: int) -> np.random.Generator:
  """Batches of a step depend on (seed, step) only, so resumes are exact."""
  return np.random.default_rng([config.seed, step])


def float_metrics(metrics: dict) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(metrics).items()}


# --- Stage: expert -------------------------------------------------------------

def train_expert(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """SAC in `total_steps` chunks of `sac_steps / total_steps` agent steps.

  Each chunk is a whole number of episodes and starts from a reseeded env,
  so a run resumed at a chunk (SAC state + replay buffer) continues exactly.
  The SAC state is a TrainState of param groups on `config.mesh` and its
  update a `make_train_step` step (sac.py: the three losses at the same
  parameters as one summed step, the Polyak target in `after_update`); a
  chunk's metrics are its last update's ('loss' is the sum of the three).
  """
  env = data_lib.make_env(config)
  sac_cfg = data_lib.sac_config(config)
  chunk = config.sac_steps // config.total_steps
  episode_steps = env.max_steps or 1000 // config.action_repeat
  if chunk % episode_steps:
    raise ValueError(f'sac_steps / total_steps = {chunk} agent steps per '
                     f'chunk must be a whole number of episodes '
                     f'({episode_steps} steps each)')
  mesh = mesh_lib.make_mesh(config.mesh)
  buffer = ep_lib.ReplayBuffer(sac_cfg.buffer_capacity, env.action_dim)
  run = run_context.RunContext.from_config(workdir, config,
                                           host_state={'replay': buffer})
  sac = sac_lib.SAC(sac_cfg, env.action_dim)
  state, shardings = sac.init_state(env.obs_dim, jax.random.key(config.seed),
                                    mesh)
  state, start = run.resume(state, shardings)
  metrics: dict[str, float] = {}
  for c in range(start, config.total_steps):
    returns, last = [], {}

    def on_episode(episode, info, returns=returns, last=last):
      del episode
      returns.append(info['return'])
      last.update(info['metrics'])

    state, _ = sac_lib.train_sac(env, sac_cfg, chunk,
                                 seed=config.seed * 1000 + c, state=state,
                                 buffer=buffer, on_episode=on_episode,
                                 mesh=mesh)
    metrics = {'episode_return': float(np.mean(returns)), **last}
    run.after_step(c + 1, state, metrics, tokens=chunk)
  run.close()
  # The buffer holds the run's episodes in order (`sac_early` data).
  info = data_lib.write_expert_data(config, workdir, env, state,
                                    buffer.episodes)
  return {'final_metrics': metrics, **info}


# --- Stage: bco ----------------------------------------------------------------

def train_bco(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """BCO(0) and BC with true actions, as one run of idm + bc steps.

  Steps [0, idm_steps) train the inverse model on embodiment transitions;
  then the demos are labelled with it (again after a resume: the labels are
  a function of its restored params) and bc_steps train the policy on them,
  and, if the demos carry actions, the 'bc_true' policy on those (disjoint
  params with their own optimisers, so one summed step trains each exactly).
  """
  embodiment, demos, info = data_lib.load_data(config, workdir)
  env = data_lib.make_env(config, seed_offset=1)
  cfg = data_lib.bco_config(config)
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.DEFAULT_RULES
  emb = ep_lib.transitions(embodiment, keys=('obs', 'action'))
  action_dim = emb['action'].shape[-1]
  with_actions = all('action' in d for d in demos)
  total = cfg.idm_steps + cfg.bc_steps

  key = jax.random.key(config.seed)
  params, optimisers = bco_params(cfg, emb['obs'].shape[-1], action_dim, key,
                                  with_actions)
  state, shardings = new_state(params, optimisers, mesh, rules)
  run = run_context.RunContext(workdir, total, save_every=config.checkpoint_every,
                        log_every=cfg.log_every)
  state, start = run.resume(state, shardings)

  idm_step, bc_step = bco_steps(cfg, action_dim, shardings, mesh, rules,
                                with_actions)
  batch_sh = batch_sharding(mesh, rules)

  def sample(data, step):
    idx = batch_rng(config, step).integers(0, len(data['obs']),
                                           cfg.batch_size)
    return {k: v[idx].astype(np.float32) for k, v in data.items()}

  labelled = true = None
  metrics = {}
  for step in range(start, total):
    if step < cfg.idm_steps:
      batch = sample(emb, step)
      state, metrics = idm_step(state, jax.device_put(batch, batch_sh), key)
    else:
      if labelled is None:  # Demo transitions, labelled by the inverse model.
        labelled = ep_lib.transitions(bco_lib.infer_actions(
            jax.device_get(state.params['idm']), demos, action_dim, cfg),
            keys=('obs', 'action'))
        if with_actions:
          true = ep_lib.transitions(demos, keys=('obs', 'action'))
      batch = {'labelled': sample(labelled, step)}
      if with_actions:
        batch['true'] = sample(true, step)
      state, metrics = bc_step(state, jax.device_put(batch, batch_sh), key)
    if run.after_step(step + 1, state, metrics):
      break
  run.close()

  # Evaluation of the cloned policies.
  params = jax.device_get(state.params)
  result: dict[str, Any] = {'final_metrics': float_metrics(metrics)}
  for name, group in (('bco', 'policy'), ('bc_true_actions', 'bc_true')):
    if group in params:
      returns = data_lib.evaluate(
          env, lambda g=group: bco_lib.bc_act_fn(params[g], action_dim, cfg),
          config.eval_episodes, 20_000)
      result[name] = data_lib.eval_summary(returns, info['demo_return'])
      logging.info('%s %s: return %.1f (normalised %.3f)', name, config.task,
                   result[name]['return'], result[name]['normalised_return'])
  if with_actions:  # How well the inverse model labels the demos.
    result['bco']['idm_demo_action_mse'] = float(np.mean(
        (labelled['action'] - true['action'])**2)) if labelled else None
  return result


def bco_params(cfg: bco_lib.BCOConfig, obs_dim: int, action_dim: int, key,
               with_actions: bool) -> tuple[dict, dict]:
  """The bco stage's param groups and optimisers: 'idm' (inverse model),
  'policy' (BCO's clone) and, with_actions, 'bc_true' (BC on the true
  actions, initialised as 'policy'); each Adam with its rate cosine-decayed
  to 0 over its steps."""
  idm = bco_lib.InverseDynamics(action_dim, cfg.hidden)
  actor = bco_lib.DeterministicActor(action_dim, cfg.hidden)
  obs0 = jnp.zeros((1, obs_dim))
  params = {'idm': idm.init(key, obs0, obs0)['params'],
            'policy': actor.init(jax.random.fold_in(key, 1), obs0)['params']}
  sched = lambda n: optim.make_optimizer(dict(
      name='adamw', lr=cfg.learning_rate, schedule='warmup_cosine',
      total_steps=max(n, 1)))[0]
  optimisers = {'idm': sched(cfg.idm_steps), 'policy': sched(cfg.bc_steps)}
  if with_actions:
    params['bc_true'] = params['policy']
    optimisers['bc_true'] = sched(cfg.bc_steps)
  return params, optimisers


def bco_steps(cfg: bco_lib.BCOConfig, action_dim: int, shardings, mesh, rules,
              with_actions: bool):
  """(idm_step on batches obs, next_obs, action; bc_step on batches
  {'labelled': obs, action[, 'true': obs, action]}): the bco stage's steps,
  `(state, batch, rng) -> (state, metrics)`, on `bco_params`' state."""
  idm_loss, bc_loss = objectives.bco_losses(action_dim, cfg)
  idm_step = make_train_step(idm_loss, shardings, mesh, rules=rules,
                             groups=('idm',))
  bc_step = make_train_step(
      bc_loss, shardings, mesh, rules=rules,
      groups=('policy', 'bc_true') if with_actions else ('policy',))
  return idm_step, bc_step


# --- Stage: pretrain -----------------------------------------------------------

def train_pretrain(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """World model on embodiment data (or action-free on demos)."""
  embodiment, demos, _ = data_lib.load_data(config, workdir)
  env = data_lib.make_env(config)
  on_demos = config.dataset == 'demos'
  episodes = demos if on_demos else embodiment
  keys = ('obs', 'is_first') if on_demos else ('obs', 'action', 'is_first')
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.DEFAULT_RULES

  cfg = agent_lib.wm_config(config, env, action_free=on_demos)
  key = jax.random.key(config.seed)
  params = {'world_model': agent_lib.init_world_model(cfg, key)}
  state, shardings = new_state(params, {'world_model': adam(config.wm_lr)},
                               mesh, rules)
  run = run_context.RunContext.from_config(workdir, config)
  state, start = run.resume(state, shardings)

  wm_loss = wm_lib.make_world_model_loss(
      wm_lib.WorldModel(cfg), free_nats=config.free_nats,
      kl_balance=config.kl_balance)
  train_step = make_train_step(
      lambda p, b, r, f: wm_loss(p['world_model'], b, r, f), shardings, mesh,
      rules=rules)
  batch_sh = batch_sharding(mesh, rules)

  metrics = {}
  for step in range(start, config.total_steps):
    batch = agent_lib.sample_batch(episodes, config.batch_size,
                                   config.seq_len, batch_rng(config, step),
                                   keys)
    state, metrics = train_step(state, jax.device_put(batch, batch_sh), key)
    if run.after_step(step + 1, state, metrics,
                      tokens=config.batch_size * config.seq_len):
      break
  run.close()

  meta = agent_lib.world_model_meta(cfg, task=config.task,
                                    dataset=config.dataset,
                                    steps=config.total_steps)
  agent_lib.save_model(workdir, 'world_model', state.params['world_model'],
                       meta)
  return {'final_metrics': float_metrics(metrics), **meta}


# --- Stage: AIME (offline) -------------------------------------------------------

def train_aime(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """AIME: the policy maximises the demos' ELBO under the frozen model."""
  _, demos, info = data_lib.load_data(config, workdir)
  env = data_lib.make_env(config, seed_offset=1)
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.DEFAULT_RULES
  replicated = NamedSharding(mesh, P())

  key = jax.random.key(config.seed)
  wm_params, cfg = agent_lib.world_model_from(config, env,
                                              config.world_model_dir,
                                              'embodiment', key)
  wm_params = jax.device_put(wm_params, replicated)  # Frozen, not donated.
  agent = agent_lib.Agent(cfg, tuple(config.policy_hidden))
  params = {'policy': agent.init_policy(jax.random.fold_in(key, 1))}
  state, shardings = new_state(params, {'policy': adam(config.policy_lr)},
                               mesh, rules)
  run = run_context.RunContext.from_config(workdir, config)
  state, start = run.resume(state, shardings)
  curve = list((run.extra or {}).get('curve', []))

  train_step = make_train_step(
      objectives.aime_loss_fn(agent, config), shardings, mesh, rules=rules,
      frozen_shardings=jax.tree.map(lambda _: replicated, wm_params))
  batch_sh = batch_sharding(mesh, rules)

  metrics = {}
  for step in range(start, config.total_steps):
    batch = agent_lib.sample_batch(demos, config.batch_size, config.seq_len,
                                   batch_rng(config, step),
                                   ('obs', 'is_first'))
    state, metrics = train_step(state, jax.device_put(batch, batch_sh), key,
                                wm_params)
    metrics = dict(metrics)
    if (step + 1) % config.eval_every == 0 or step + 1 == config.total_steps:
      ev = agent.evaluate(config, env, wm_params, state.params['policy'],
                          info['demo_return'])
      curve.append({'step': step + 1, **ev})
      metrics['normalised_return'] = ev['normalised_return']
    if run.after_step(step + 1, state, metrics, extra={'curve': curve}):
      break
  run.close()

  agent_lib.save_model(workdir, 'policy', state.params['policy'],
                       {'stage': 'aime'})
  return {'final_metrics': float_metrics(metrics),
          'eval': curve[-1] if curve else None, 'curve': curve,
          'demo_return': info['demo_return']}


# --- Stage: AIME-v2 (online) -----------------------------------------------------

def train_aime_v2(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """AIME-v2's online loop: one checkpoint step per collected episode."""
  embodiment, demos, info = data_lib.load_data(config, workdir)
  env = data_lib.make_env(config, seed_offset=2)
  eval_env = data_lib.make_env(config, seed_offset=3)
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.DEFAULT_RULES
  key = jax.random.key(config.seed)

  # Models and state.
  wm_params, cfg = agent_lib.world_model_from(
      config, env, config.world_model_dir, 'embodiment', key)
  agent = agent_lib.Agent(cfg, tuple(config.policy_hidden))
  value_fn = objectives.scalar_fn(agent_lib.value_net(config.value_hidden))
  disc_fn = objectives.scalar_fn(agent_lib.value_net(config.value_hidden))
  params, optimisers = v2_params(config, agent, wm_params, key)
  state, shardings = new_state(params, optimisers, mesh, rules)
  add_reward = v2_reward_labeller(config, env, key)
  embodiment = [add_reward(ep, 1_000_000 + i)
                for i, ep in enumerate(embodiment)]
  buffer = ep_lib.ReplayBuffer(None, env.action_dim)
  run = run_context.RunContext.from_config(workdir, config,
                                    host_state={'replay': buffer})
  state, start = run.resume(state, shardings)
  curve = list((run.extra or {}).get('curve', []))

  # Steps.
  wm_step = make_train_step(objectives.v2_world_model_loss_fn(agent, config),
                            shardings, mesh, rules=rules,
                            groups=('world_model',))
  disc_step = make_train_step(
      objectives.v2_discriminator_loss_fn(agent, disc_fn), shardings, mesh,
      rules=rules, groups=('disc',))
  agent_step = make_train_step(
      objectives.v2_agent_loss_fn(agent, config, value_fn, disc_fn),
      shardings, mesh, rules=rules, groups=('policy', 'value'),
      after_update=objectives.after_agent_update(config))
  batch_sh = batch_sharding(mesh, rules)
  put = lambda batch: jax.device_put(batch, batch_sh)

  # Loop: collect an episode, train on the replay (+ embodiment data).
  metrics = {}
  for it in range(start, config.total_steps):
    act = agent.act_fn(jax.device_get(state.params['world_model']),
                       jax.device_get(state.params['policy']), False)
    episode = ep_lib.run_episode(env, act, config.seed * 100_000 + it)
    buffer.add(add_reward(episode, it))
    rng = batch_rng(config, it)
    for u in range(config.updates_per_episode):
      k = jax.random.fold_in(jax.random.fold_in(key, it), u)
      online, demo = v2_batches(config, buffer.episodes, embodiment, demos,
                                rng)
      state, m_wm = wm_step(state, put(online), jax.random.fold_in(k, 0))
      m_disc = {}
      if config.reward == 'adversarial':
        state, m_disc = disc_step(
            state, put({'demo_obs': demo['obs'], 'online_obs': online['obs']}),
            jax.random.fold_in(k, 1))
      online.pop(objectives.SURROGATE, None)
      state, m_agent = agent_step(state, put({'online': online, 'demo': demo}),
                                  jax.random.fold_in(k, 2))
    metrics = {**{f'wm/{k}': v for k, v in m_wm.items()},
               **{f'disc/{k}': v for k, v in m_disc.items()},
               **float_metrics(m_agent),
               'train_return': ep_lib.episode_return(episode)}
    env_steps = (it + 1) * ep_lib.episode_length(episode) * config.action_repeat
    if (it + 1) % config.eval_every == 0 or it + 1 == config.total_steps:
      ev = agent.evaluate(config, eval_env, state.params['world_model'],
                          state.params['policy'], info['demo_return'])
      curve.append({'episode': it + 1, 'env_steps': env_steps, **ev})
      metrics.update(normalised_return=ev['normalised_return'],
                     eval_return=ev['return'])
    if run.after_step(it + 1, state, metrics,
                      tokens=ep_lib.episode_length(episode),
                      extra={'curve': curve}):
      break
  run.close()

  agent_lib.save_model(workdir, 'policy', state.params['policy'],
                       {'stage': 'aime_v2'})
  if jax.process_index() == 0:
    plots.plot_learning_curves(workdir, keys=('normalised_return',
                                              'train_return', 'loss'))
  return {'final_metrics': float_metrics(metrics),
          'eval': curve[-1] if curve else None, 'curve': curve,
          'demo_return': info['demo_return']}


def v2_params(config, agent: agent_lib.Agent, wm_params, key
              ) -> tuple[dict, dict]:
  """AIME-v2's param groups and their optimisers (objectives.py's table)."""
  if config.init_policy_dir:  # E.g. the offline AIME policy: fine-tune it.
    policy, _ = agent_lib.load_model(config.init_policy_dir, 'policy')
    logging.info('aime_v2: policy from %s', config.init_policy_dir)
  else:
    policy = agent.init_policy(jax.random.fold_in(key, 1))
  cfg = agent.model.config
  value_net = agent_lib.value_net(config.value_hidden)
  value = value_net.init(jax.random.fold_in(key, 2),
                         jnp.zeros((1, cfg.feature_dim)))['params']
  params = {'world_model': wm_params, 'policy': policy, 'value': value,
            'target_value': value,
            'return_scale': jnp.zeros((), jnp.float32)}
  optimisers = {'world_model': adam(config.wm_lr),
                'policy': adam(config.policy_lr),
                'value': adam(config.value_lr)}
  if config.reward == 'adversarial':
    params['disc'] = value_net.init(jax.random.fold_in(key, 3),
                                    jnp.zeros((1, cfg.embed_dim)))['params']
    optimisers['disc'] = adam(config.value_lr)
  return params, optimisers


def v2_reward_labeller(config, env, key):
  """`label(episode, index)`: the episode with its whole-episode surrogate
  reward (objectives.episode_surrogate_reward) under the action-free demo
  model, with a key of its own; the identity unless reward='surrogate'."""
  if config.reward != 'surrogate':
    return lambda episode, index: episode
  demo_params, demo_cfg = agent_lib.world_model_from(
      config, env, config.demo_model_dir, 'demo', key)
  demo_wm = wm_lib.world_model_fns(wm_lib.WorldModel(demo_cfg))
  reward_key = jax.random.fold_in(key, 4)
  return lambda episode, index: objectives.with_surrogate_reward(
      episode, demo_params, demo_wm, jax.random.fold_in(reward_key, index))


def v2_batches(config, online_episodes, embodiment, demos,
               rng: np.random.Generator) -> tuple[dict, dict]:
  """(world-model windows: half embodiment data with `regulariser`, half
  replay; observation-only demo windows), [B, L, ...] each."""
  keys = ('obs', 'action', 'is_first')
  if config.reward == 'surrogate':
    keys += (objectives.SURROGATE,)
  half = config.batch_size // 2 if config.regulariser else 0
  online = agent_lib.sample_batch(online_episodes, config.batch_size - half,
                                  config.seq_len, rng, keys)
  if half:
    emb = agent_lib.sample_batch(embodiment, half, config.seq_len, rng, keys)
    online = {n: np.concatenate([emb[n], online[n]]) for n in online}
  demo = agent_lib.sample_batch(demos, config.batch_size, config.seq_len, rng,
                                ('obs', 'is_first'))
  return online, demo
