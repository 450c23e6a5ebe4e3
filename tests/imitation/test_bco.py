"""BC and BCO(0) on a toy linear system o_{t+1} = o_t + a_t."""

import jax
import numpy as np
import pytest

from jaxreason.imitation import bco
from jaxreason.imitation import episodes as E

K = np.array([[-0.3, 0.1], [0.1, -0.25]], np.float32)  # expert: a = K o
CFG = bco.BCOConfig(hidden=(64, 64), learning_rate=3e-3, batch_size=128,
                    idm_steps=3000, bc_steps=1500, log_every=1500)


def rollout(policy, rng, T):
  obs = [rng.uniform(-2, 2, 2).astype(np.float32)]
  actions = [np.zeros(2, np.float32)]
  for _ in range(T):
    actions.append(policy(obs[-1]).astype(np.float32))
    obs.append(obs[-1] + actions[-1])
  return {
      'obs': np.stack(obs), 'action': np.stack(actions),
      'reward': np.zeros(T + 1, np.float32),
      'is_first': np.arange(T + 1) == 0, 'is_last': np.arange(T + 1) == T,
      'is_terminal': np.zeros(T + 1, bool),
  }


@pytest.fixture(scope='module')
def data():
  rng = np.random.default_rng(0)
  embodiment = [rollout(lambda o: rng.uniform(-0.9, 0.9, 2), rng, T=10)
                for _ in range(400)]
  expert = [rollout(lambda o: K @ o, rng, T=5) for _ in range(60)]
  demos = [{k: v for k, v in ep.items() if k not in ('action', 'reward')}
           for ep in expert]  # observation only
  return embodiment, expert, demos


@pytest.fixture(scope='module')
def bco_run(data):
  embodiment, _, demos = data
  return bco.train_bco(embodiment, demos, CFG, seed=0)


def test_inverse_dynamics_recovers_actions(data, bco_run):
  _, expert, _ = data
  idm, _, metrics = bco_run
  assert metrics['idm/loss'] < 1e-3
  labelled = bco.infer_actions(idm, expert, 2, CFG)
  for ep, true in zip(labelled, expert):
    np.testing.assert_array_equal(ep['action'][0], 0)  # format: no action yet
    np.testing.assert_array_equal(ep['true_action'], true['action'])
  err = np.concatenate([ep['action'][1:] - t['action'][1:]
                        for ep, t in zip(labelled, expert)])
  scale = np.abs(np.concatenate([t['action'][1:] for t in expert])).mean()
  assert scale > 0.1  # the actions are not trivially small
  assert np.abs(err).mean() < 0.1 * scale


def test_bco_recovers_linear_expert_from_observations(data, bco_run):
  _, expert, _ = data
  _, policy, metrics = bco_run
  assert 'idm/demo_action_mse' not in metrics  # demos had no actions
  obs = np.concatenate([ep['obs'] for ep in expert])
  pred = np.asarray(bco.bc_policy(policy, obs, 2, CFG))
  scale = np.abs(obs @ K.T).mean()
  assert np.abs(pred - obs @ K.T).mean() < 0.1 * scale
  act_fn = bco.bc_act_fn(policy, 2, CFG)
  np.testing.assert_allclose(act_fn({'obs': obs[3]}, jax.random.PRNGKey(0)),
                             pred[3], rtol=1e-5, atol=1e-6)


def test_bc_with_true_actions_and_it_needs_them(data):
  _, expert, demos = data
  policy, metrics = bco.train_bc(expert, CFG, seed=0)
  assert metrics['loss'] < 1e-3
  obs = np.concatenate([ep['obs'] for ep in expert])
  pred = np.asarray(bco.bc_policy(policy, obs, 2, CFG))
  assert np.abs(pred - obs @ K.T).mean() < 0.03 * np.abs(obs @ K.T).mean()
  with pytest.raises(KeyError, match='action'):
    bco.train_bc(demos, CFG)
