"""The dm_control wrapper against the raw suite, and its episode records."""

import os

import numpy as np
import pytest

from dm_control import suite

from jaxreason.imitation import envs
from jaxreason.imitation import episodes as E


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError, match='walker-fly') as err:
    envs.make_env('walker-fly', action_repeat=1, seed=0)
  assert 'walker-stand' in str(err.value) and 'cheetah-run' in str(err.value)
  assert len(envs.task_names()) == len(suite.ALL_TASKS)


def test_episode_record_alignment_and_round_trip(tmp_path):
  env = envs.make_env('walker-stand', action_repeat=2, seed=0, max_steps=6)
  assert (env.obs_dim, env.action_dim) == (24, 6)
  rng = np.random.default_rng(0)
  returned = []

  def act_fn(step, key):
    del key
    assert step['obs'].shape == (24,)
    returned.append(rng.uniform(-1, 1, 6).astype(np.float32))
    return returned[-1]

  ep = E.run_episode(env, act_fn, seed=3)
  T = 6
  assert ep['obs'].shape == (T + 1, 24) and ep['obs'].dtype == np.float32
  assert ep['action'].shape == (T + 1, 6) and ep['action'].dtype == np.float32
  assert len(returned) == T
  np.testing.assert_array_equal(ep['action'][0], 0)
  np.testing.assert_array_equal(ep['action'][1:], np.stack(returned))
  assert ep['reward'][0] == 0 and np.all(ep['reward'][1:] > 0)
  np.testing.assert_array_equal(ep['is_first'], np.arange(T + 1) == 0)
  np.testing.assert_array_equal(ep['is_last'], np.arange(T + 1) == T)
  assert not ep['is_terminal'].any()  # a time limit is not a terminal state
  path = E.save_episode(str(tmp_path), ep)
  (loaded,) = E.load_episodes(path)
  for k in ep:
    np.testing.assert_array_equal(ep[k], loaded[k], err_msg=k)
  # The same seed reproduces the initial state.
  again = E.run_episode(env, lambda s, k: np.zeros(6), seed=3)
  np.testing.assert_array_equal(again['obs'][0], ep['obs'][0])
  with pytest.raises(RuntimeError, match='reset'):
    env.step(np.zeros(6))


def test_action_repeat_rescaling_and_obs_match_raw_env():
  # quadruped has asymmetric action bounds, so [-1, 1] rescaling matters.
  repeat, seed = 3, 5
  env = envs.make_env('quadruped-walk', action_repeat=repeat, seed=0)
  raw = suite.load('quadruped', 'walk', task_kwargs={'random': 0})
  spec = raw.action_spec()
  actions = np.random.default_rng(1).uniform(-1, 1, (4, env.action_dim))

  step = env.reset(seed=seed)
  raw.task.random.seed(seed)
  ts = raw.reset()
  flat = lambda o: np.concatenate(
      [np.asarray(o[k], np.float32).ravel() for k in sorted(o)])
  np.testing.assert_array_equal(step['obs'], flat(ts.observation))
  for a in actions:
    step = env.step(a)
    scaled = spec.minimum + (a + 1) / 2 * (spec.maximum - spec.minimum)
    total = 0.0
    for _ in range(repeat):
      ts = raw.step(scaled)
      total += ts.reward
    assert step['reward'] == pytest.approx(total, rel=1e-5)
    np.testing.assert_allclose(step['obs'], flat(ts.observation), rtol=1e-5,
                               atol=1e-5)
  # Obs slices name the flattened pieces.
  np.testing.assert_allclose(step['obs'][env.obs_slices['torso_velocity']],
                             ts.observation['torso_velocity'], rtol=1e-5)


def _rendering_available():
  try:
    envs.make_env('cartpole-balance', action_repeat=1, seed=0, pixels=True)
    return True
  except RuntimeError:
    return False


def test_pixels_or_clear_error():
  """Renders if a GL backend works (MUJOCO_GL=egl/osmesa); else says so."""
  if not _rendering_available():
    with pytest.raises(RuntimeError, match='MUJOCO_GL=egl'):
      envs.make_env('cartpole-balance', action_repeat=1, seed=0, pixels=True)
    pytest.skip(f'no OpenGL backend with MUJOCO_GL='
                f'{os.environ.get("MUJOCO_GL")}; checked the error instead')
  env = envs.make_env('cartpole-balance', action_repeat=2, seed=0, pixels=True,
                      max_steps=3)
  ep = E.run_episode(env, lambda s, k: np.ones(1), seed=0)
  assert ep['pixels'].shape == (4, 64, 64, 3)
  assert ep['pixels'].dtype == np.uint8
  assert ep['pixels'].std() > 0
  assert np.any(ep['pixels'][0] != ep['pixels'][-1])  # the cart moved
