"""AIME-v2's surrogate reward along whole episodes, and the param-group step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh

from jaxreason.imitation import aime
from jaxreason.imitation import agent as agent_lib
from jaxreason.imitation import episodes as ep_lib
from jaxreason.imitation import objectives
from jaxreason.models.world_model import (WorldModel, WorldModelConfig,
                                          world_model_fns)
from jaxreason.train.state import ParamGroups, state_from_params
from jaxreason.train.step import make_train_step

D, T, L = 4, 24, 8


@pytest.fixture(autouse=True, scope='module')
def _fast_threefry():
  with jax.threefry_partitionable(False):  # See tests/world_model/conftest.py.
    yield


def _demo_model():
  model = WorldModel(WorldModelConfig(
      obs_dim=D, action_dim=2, action_free=True, reward_head=False,
      rssm=dict(deter_dim=8, stoch_dim=4, hidden_dim=8), embed_dim=8,
      mlp_hidden=8, mlp_layers=1, head_hidden=8, head_layers=1))
  params = agent_lib.init_world_model(model.config, jax.random.key(0))
  return world_model_fns(model), params


def _episode(seed):
  rng = np.random.default_rng(seed)
  first = np.zeros(T + 1, bool)
  first[0] = True
  return {'obs': rng.normal(size=(T + 1, D)).astype(np.float32),
          'is_first': first}


def test_surrogate_reward_windows_come_from_the_whole_episode():
  wm, params = _demo_model()
  key = jax.random.key(7)
  ep = objectives.with_surrogate_reward(_episode(0), params, wm, key)
  reward = ep[objectives.SURROGATE]
  assert reward.shape == (T + 1,)
  # The whole-episode reward is the filter run once from t = 0.
  whole = aime.surrogate_reward(params, wm, ep['obs'][None],
                                ep['is_first'][None], key)[0]
  np.testing.assert_allclose(reward, whole, rtol=1e-5, atol=1e-6)
  # A sampled window carries the whole-episode values at its steps ...
  batch = agent_lib.sample_batch([ep], 16, L, np.random.default_rng(1),
                                 ('obs', 'is_first', objectives.SURROGATE))
  starts = [int(np.flatnonzero((ep['obs'] == w[0]).all(-1))[0])
            for w in batch['obs']]
  assert max(starts) > 0
  for s, r in zip(starts, batch[objectives.SURROGATE]):
    np.testing.assert_array_equal(r, reward[s:s + L])
  # ... which differ from a filter restarted at the window (cold start).
  s = max(starts)
  cold = aime.surrogate_reward(
      params, wm, ep['obs'][None, s:s + L],
      np.eye(1, L, dtype=bool), key)[0]
  assert np.abs(np.asarray(cold) - reward[s:s + L]).max() > 1e-3


def test_replay_buffer_keeps_the_reward_through_a_save(tmp_path):
  wm, params = _demo_model()
  ep = objectives.with_surrogate_reward(_episode(1), params, wm,
                                        jax.random.key(0))
  buffer = ep_lib.ReplayBuffer()
  buffer.add(ep)
  buffer.save(str(tmp_path), step=3)
  restored = ep_lib.ReplayBuffer().restore(str(tmp_path), step=3)
  np.testing.assert_array_equal(restored.episodes[0][objectives.SURROGATE],
                                ep[objectives.SURROGATE])


def test_group_step_updates_only_its_groups_and_carried_state():
  mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1, 1),
              ('data', 'fsdp', 'tensor'))
  params = {'a': jnp.ones(3), 'b': jnp.ones(3), 'ema': jnp.zeros(3)}
  opt = {'a': optax.sgd(0.5), 'b': optax.sgd(0.5)}
  state, sh = state_from_params(params, lambda _: params,
                                lambda _: ParamGroups(opt), mesh)

  def loss_fn(p, batch, rng, frozen):
    del rng, frozen
    return jnp.sum(p['a'] * batch['x'][0]) + jnp.sum(p['b'] ** 2), {}

  def after(state, metrics):
    del metrics
    p = dict(state.params, ema=0.5 * state.params['ema'] + 0.5 *
             state.params['a'])
    return state.replace(params=p)

  step = make_train_step(loss_fn, sh, mesh, groups=('a',), after_update=after)
  state, m = step(state, {'x': jnp.full((1, 3), 2.0)}, jax.random.key(0))
  np.testing.assert_allclose(state.params['a'], 1 - 0.5 * 2.0)  # sgd step.
  np.testing.assert_allclose(state.params['b'], 1.0)  # Not in `groups`.
  np.testing.assert_allclose(state.params['ema'], 0.5 * 0.0)
  np.testing.assert_allclose(m['grad_norm'], np.sqrt(3 * 4.0), rtol=1e-6)
  assert int(state.step) == 1
