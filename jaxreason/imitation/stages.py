"""The data and baseline stages of the imitation study.

  expert   SAC on states; writes the demonstrations (the trained agent's
           episodes) and the embodiment dataset (random-action episodes plus
           the SAC run's early, pre-competence episodes).
  bco      BCO(0) from the embodiment data and observation-only demos, and
           behaviour cloning with the demos' true actions (upper reference).

Both write `result.json` with evaluation returns normalised by the
demonstrations' mean return. The world-model stages (pretrain, aime,
aime_v2) are in `jaxreason/recipes/aime.py`. Layout of a data folder:

  DATA/embodiment/*.npz   episodes with actions (episodes.py format)
  DATA/demos/*.npz        expert episodes; imitation reads only obs + flags,
                          actions are kept to check inferred actions
  DATA/info.json          task, action repeat, expert and demo returns
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxreason.imitation import bco as bco_lib
from jaxreason.imitation import envs
from jaxreason.imitation import episodes as ep_lib
from jaxreason.imitation import sac as sac_lib
from jaxreason.train import run_context
from jaxreason.train import metrics as metrics_lib

EMBODIMENT, DEMOS, INFO = 'embodiment', 'demos', 'info.json'


def make_env(config: ml_collections.ConfigDict, seed_offset: int = 0):
  return envs.make_env(config.task, action_repeat=config.action_repeat,
                       seed=config.seed + seed_offset,
                       max_steps=config.get('max_episode_steps') or None)


def evaluate(env, act_fn_factory: Callable[[], ep_lib.ActFn],
             num_episodes: int, seed: int) -> list[float]:
  """Returns of `num_episodes` episodes; a fresh act_fn per episode."""
  return [ep_lib.episode_return(
      ep_lib.run_episode(env, act_fn_factory(), seed + i))
          for i in range(num_episodes)]


def eval_summary(returns: list[float], demo_return: float) -> dict:
  mean = float(np.mean(returns))
  return {'returns': [float(r) for r in returns], 'return': mean,
          'return_std': float(np.std(returns)),
          'normalised_return': mean / max(demo_return, 1e-9)}


def load_data(config: ml_collections.ConfigDict, workdir: str
              ) -> tuple[list, list, dict]:
  """(embodiment episodes, demo episodes, info) from `config.data_dir`.

  An empty data_dir (':debug' runs) collects a few random-action episodes in
  `workdir/data` and uses them as both datasets.
  """
  data_dir = config.data_dir
  if not data_dir:
    data_dir = os.path.join(workdir, 'data')
    if not os.path.exists(os.path.join(data_dir, INFO)):
      logging.warning('config.data_dir is empty: collecting random episodes '
                      'as stand-in data (debugging only)')
      env = make_env(config)
      eps = [ep_lib.run_episode(env, envs.random_act_fn(env, i), i)
             for i in range(2)]
      _write_data(data_dir, eps, eps, {'task': config.task,
                                        'action_repeat': config.action_repeat,
                                        'demo_return': float(np.mean(
                                            [ep_lib.episode_return(e)
                                             for e in eps]))})
  info_path = os.path.join(data_dir, INFO)
  if not os.path.exists(info_path):
    raise FileNotFoundError(
        f'{info_path} not found: config.data_dir must be the data folder '
        'written by the expert stage (configs/aime/expert.py)')
  with open(info_path) as f:
    info = json.load(f)
  if info['task'] != config.task:
    raise ValueError(f'{data_dir} holds data of {info["task"]!r} but '
                     f'config.task is {config.task!r}')
  embodiment = ep_lib.load_episodes(os.path.join(data_dir, EMBODIMENT))
  demos = ep_lib.load_episodes(os.path.join(data_dir, DEMOS),
                               required_keys=ep_lib.OBS_ONLY_KEYS)
  if not embodiment or not demos:
    raise ValueError(f'{data_dir}: no episodes in {EMBODIMENT}/ or {DEMOS}/')
  return embodiment, demos, info


def _write_data(data_dir, embodiment, demos, info) -> None:
  for sub, eps in ((EMBODIMENT, embodiment), (DEMOS, demos)):
    for i, ep in enumerate(eps):
      ep_lib.save_episode(os.path.join(data_dir, sub), ep,
                          name=f'{i:05d}.npz')
  tmp = os.path.join(data_dir, INFO + '.tmp')
  with open(tmp, 'w') as f:
    json.dump(info, f, indent=1)
  os.replace(tmp, os.path.join(data_dir, INFO))  # Written last: data ready.


def sac_config(config: ml_collections.ConfigDict) -> sac_lib.SACConfig:
  kw = dict(config.sac)
  if 'hidden' in kw:
    kw['hidden'] = tuple(kw['hidden'])
  return sac_lib.SACConfig(**kw)


@flax.struct.dataclass
class ExpertState:
  """What the expert stage checkpoints: finished chunks and the SAC agent."""

  step: jax.Array  # int32 []: chunks done.
  sac: sac_lib.SACState


def run_expert(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains SAC in chunks (checkpoint + replay buffer after each), then data.

  `total_steps` chunks of `sac_steps / total_steps` agent steps (a whole
  number of episodes); a killed run resumes at its last finished chunk with
  its replay buffer.
  """
  env = make_env(config)
  sac_cfg = sac_config(config)
  chunk = config.sac_steps // config.total_steps
  episode_steps = env.max_steps or 1000 // config.action_repeat
  if chunk % episode_steps:
    raise ValueError(f'sac_steps / total_steps = {chunk} agent steps per '
                     f'chunk must be a whole number of episodes '
                     f'({episode_steps} steps each)')
  run = run_context.RunContext.from_config(workdir, config)
  state = ExpertState(step=jnp.zeros((), jnp.int32), sac=sac_lib.init(
      sac_cfg, env.obs_dim, env.action_dim, jax.random.key(config.seed)))
  state, start = run.resume(state, jax.tree.map(lambda _: None, state))
  buffer = ep_lib.ReplayBuffer(sac_cfg.buffer_capacity, env.action_dim)
  buffer_dir = os.path.join(workdir, 'replay')
  if start:
    buffer.restore(buffer_dir)
  ep_dir = os.path.join(workdir, 'sac_episodes')
  metrics: dict[str, float] = {}
  for c in range(start, config.total_steps):
    returns, last = [], {}

    def on_episode(episode, info, returns=returns, last=last):
      ep_lib.save_episode(ep_dir, episode,
                          name=f'{c:04d}-{len(returns):04d}.npz')
      returns.append(info['return'])
      last.update(info['metrics'])

    # train_sac counts the buffer's steps toward `random_steps`.
    sac_state, _ = sac_lib.train_sac(
        env, sac_cfg, chunk, seed=config.seed * 1000 + c, state=state.sac,
        buffer=buffer, on_episode=on_episode)
    state = ExpertState(step=jnp.asarray(c + 1, jnp.int32), sac=sac_state)
    metrics = {'episode_return': float(np.mean(returns)), **last}
    metrics['loss'] = last.get('critic_loss', 0.0)  # 0 before learning.
    buffer.save(buffer_dir)  # Before the checkpoint that marks the chunk.
    run.after_step(c + 1, state, metrics, tokens=chunk)
  run.close()

  # Datasets: the run's first episodes (random ones first) as embodiment
  # data, and episodes of the trained agent (deterministic) as demos.
  all_eps = ep_lib.load_episodes(ep_dir)
  embodiment = all_eps[:config.embodiment_episodes]
  demo_eps = [ep_lib.run_episode(env, sac_lib.sac_act_fn(state.sac), 10_000 + i)
              for i in range(config.num_demos)]
  demo_returns = [ep_lib.episode_return(e) for e in demo_eps]
  emb_returns = [ep_lib.episode_return(e) for e in embodiment]
  info = {'task': config.task, 'action_repeat': config.action_repeat,
          'sac_steps': config.sac_steps, 'demo_returns': demo_returns,
          'demo_return': float(np.mean(demo_returns)),
          'embodiment_returns': emb_returns,
          'embodiment_return': float(np.mean(emb_returns)),
          'sac_episode_returns': [ep_lib.episode_return(e) for e in all_eps]}
  _write_data(os.path.join(workdir, 'data'), embodiment, demo_eps, info)
  logging.info('expert %s: demo return %.1f, embodiment mean return %.1f '
               '(%d episodes)', config.task, info['demo_return'],
               info['embodiment_return'], len(embodiment))
  result = {'final_metrics': metrics, **info}
  write_result(workdir, result)
  return result


def bco_config(config: ml_collections.ConfigDict) -> bco_lib.BCOConfig:
  kw = dict(config.bco)
  if 'hidden' in kw:
    kw['hidden'] = tuple(kw['hidden'])
  return bco_lib.BCOConfig(**kw)


def run_bco(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """BCO(0) and BC with true actions; evaluation returns of both."""
  embodiment, demos, info = load_data(config, workdir)
  env = make_env(config, seed_offset=1)
  cfg = bco_config(config)
  writer = metrics_lib.MetricWriter(workdir)
  _, bco_params, bco_metrics = bco_lib.train_bco(embodiment, demos, cfg,
                                                 seed=config.seed)
  action_dim = env.action_dim
  bco_eval = eval_summary(
      evaluate(env, lambda: bco_lib.bc_act_fn(bco_params, action_dim, cfg),
               config.eval_episodes, 20_000), info['demo_return'])
  writer.write(1, {'loss': bco_metrics['bc/loss'], **bco_metrics,
                       'normalised_return': bco_eval['normalised_return']})
  result: dict[str, Any] = {'bco': {**bco_eval, 'metrics': bco_metrics}}
  final = {'loss': bco_metrics['bc/loss'], **bco_metrics}
  if all('action' in d for d in demos):
    bc_params, bc_metrics = bco_lib.train_bc(demos, cfg, seed=config.seed)
    bc_eval = eval_summary(
        evaluate(env, lambda: bco_lib.bc_act_fn(bc_params, action_dim, cfg),
                 config.eval_episodes, 20_000), info['demo_return'])
    result['bc_true_actions'] = {**bc_eval, 'metrics': bc_metrics}
    final = {'loss': bc_metrics['loss'],
             **{f'bc_true/{k}': v for k, v in bc_metrics.items()}}
  writer.write(2, final)
  writer.close()
  result['final_metrics'] = final
  for name in ('bco', 'bc_true_actions'):
    if name in result:
      logging.info('%s %s: return %.1f (normalised %.3f)', name, config.task,
                   result[name]['return'], result[name]['normalised_return'])
  write_result(workdir, result)
  return result


def write_result(workdir: str, result: dict) -> None:
  if jax.process_index() == 0:
    tmp = os.path.join(workdir, 'result.json.tmp')
    with open(tmp, 'w') as f:
      json.dump(result, f, indent=1, default=float)
    os.replace(tmp, os.path.join(workdir, 'result.json'))
