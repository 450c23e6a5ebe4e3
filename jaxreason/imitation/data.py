"""The imitation study's environments, datasets and evaluation.

The expert stage (jaxreason/recipes/aime.py) writes the demonstrations (the
trained SAC agent's episodes) and the embodiment dataset (by default
episodes of a random policy: task-agnostic, `embodiment_episodes`); every
stage reads them with `load_data` and reports evaluation returns normalised
by the demonstrations' mean return (`eval_summary`). Layout of a data folder:

  DATA/embodiment/*.npz   episodes with actions (episodes.py format)
  DATA/demos/*.npz        expert episodes; imitation reads only obs + flags,
                          actions are kept to check inferred actions
  DATA/info.json          task, action repeat, expert and demo returns
"""

from __future__ import annotations

import json
import os
from typing import Callable

from absl import logging
import jax
import ml_collections
import numpy as np

from jaxreason.imitation import bco as bco_lib
from jaxreason.imitation import envs
from jaxreason.imitation import episodes as ep_lib
from jaxreason.imitation import sac as sac_lib
from jaxreason.train.state import TrainState

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


def bco_config(config: ml_collections.ConfigDict) -> bco_lib.BCOConfig:
  kw = dict(config.bco)
  if 'hidden' in kw:
    kw['hidden'] = tuple(kw['hidden'])
  return bco_lib.BCOConfig(**kw)


EMBODIMENT_POLICIES = ('random', 'sac_early')


def embodiment_episodes(config: ml_collections.ConfigDict, env,
                        sac_episodes: list) -> list:
  """The embodiment dataset, by `config.embodiment_policy`.

  'random' (default, task-agnostic as in AIME-v2): episodes of the uniform
  random policy, seeded 30_000 + i. 'sac_early': the SAC run's first
  episodes (random-action ones, then early SAC ones), which carry the task
  reward's influence (the study before this option).
  """
  policy = config.get('embodiment_policy', 'random')
  n = config.embodiment_episodes
  if policy == 'random':
    return [ep_lib.run_episode(env, envs.random_act_fn(env, 30_000 + i),
                               30_000 + i) for i in range(n)]
  if policy == 'sac_early':
    return sac_episodes[:n]
  raise ValueError(f'embodiment_policy={policy!r}: expected one of '
                   f'{EMBODIMENT_POLICIES}')


def write_expert_data(config: ml_collections.ConfigDict, workdir: str, env,
                      sac_state: TrainState, sac_episodes: list) -> dict:
  """Writes workdir/data (embodiment data, demos of the agent, info)."""
  embodiment = embodiment_episodes(config, env, sac_episodes)
  sac = sac_lib.SAC(sac_config(config), env.action_dim)
  demo_eps = [ep_lib.run_episode(env, sac_lib.sac_act_fn(sac, sac_state),
                                 10_000 + i) for i in range(config.num_demos)]
  demo_returns = [ep_lib.episode_return(e) for e in demo_eps]
  emb_returns = [ep_lib.episode_return(e) for e in embodiment]
  info = {'task': config.task, 'action_repeat': config.action_repeat,
          'sac_steps': config.sac_steps, 'demo_returns': demo_returns,
          'demo_return': float(np.mean(demo_returns)),
          'embodiment_policy': config.get('embodiment_policy', 'random'),
          'embodiment_returns': emb_returns,
          'embodiment_return': float(np.mean(emb_returns)),
          'sac_episode_returns': [ep_lib.episode_return(e)
                                  for e in sac_episodes]}
  _write_data(os.path.join(workdir, 'data'), embodiment, demo_eps, info)
  logging.info('expert %s: demo return %.1f, embodiment mean return %.1f '
               '(%d %s episodes)', config.task, info['demo_return'],
               info['embodiment_return'], len(embodiment),
               info['embodiment_policy'])
  return info


def write_result(workdir: str, result: dict) -> None:
  if jax.process_index() == 0:
    tmp = os.path.join(workdir, 'result.json.tmp')
    with open(tmp, 'w') as f:
      json.dump(result, f, indent=1, default=float)
    os.replace(tmp, os.path.join(workdir, 'result.json'))
