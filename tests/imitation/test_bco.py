"""BC and BCO(0) on the bco stage's core steps (recipes/aime.py `bco_params`,
`bco_steps`): one step against NumPy and Adam from the formulas, and whole
runs on a toy linear system o_{t+1} = o_t + a_t."""

import jax
import numpy as np
import optax
import pytest

from jaxreason.imitation import bco
from jaxreason.imitation import episodes as E
from jaxreason.recipes import aime
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train.step import batch_sharding

K = np.array([[-0.3, 0.1], [0.1, -0.25]], np.float32)  # expert: a = K o
CFG = bco.BCOConfig(hidden=(64, 64), learning_rate=3e-3, batch_size=128,
                    idm_steps=3000, bc_steps=1500, log_every=1500)
MESH = mesh_lib.make_mesh(mesh_lib.DEFAULT_MESH, devices=jax.devices()[:1])
RULES = rules_lib.DEFAULT_RULES


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


def _stage(cfg=CFG, with_actions=True):
  params, optimisers = aime.bco_params(cfg, 2, 2, jax.random.key(0),
                                       with_actions)
  state, shardings = aime.new_state(params, optimisers, MESH, RULES)
  return (state, *aime.bco_steps(cfg, 2, shardings, MESH, RULES,
                                 with_actions))


def _np_mlp_tanh(p, x):
  """tanh(MLP(x)) in NumPy: ReLU layers dense0.., then 'out'."""
  (p,) = p.values()  # The module's one MLP.
  x = np.asarray(x, np.float64)
  for i in range(len(p) - 1):
    x = np.maximum(x @ p[f'dense{i}']['kernel'] + p[f'dense{i}']['bias'], 0)
  return np.tanh(x @ p['out']['kernel'] + p['out']['bias'])


def test_one_step_matches_numpy_and_separate_adams():
  """The BC step trains 'policy' on the labelled and 'bc_true' on the true
  batch as two separate Adams (disjoint groups, one summed loss); the inverse
  model's step leaves the policies alone."""
  state, idm_step, bc_step = _stage()
  old = jax.tree.map(np.asarray, state.params)
  rng = np.random.default_rng(1)
  b = lambda: {'obs': rng.normal(size=(16, 2)).astype(np.float32),
               'action': rng.uniform(-1, 1, (16, 2)).astype(np.float32)}
  batch = {'labelled': b(), 'true': b()}
  state, m = bc_step(state, jax.device_put(batch, batch_sharding(MESH)),
                     jax.random.key(0))
  actor = bco.DeterministicActor(2, CFG.hidden)
  for group, part in (('policy', 'labelled'), ('bc_true', 'true')):
    x, y = batch[part]['obs'], batch[part]['action']
    want = np.mean((_np_mlp_tanh(old[group], x) - y)**2)
    np.testing.assert_allclose(m[f'{group}/loss'], want, rtol=1e-5)
    grads = jax.grad(lambda p: ((
        actor.apply({'params': p}, x) - y)**2).mean())(old[group])
    tx = optax.adam(CFG.learning_rate)  # Step 0 of the cosine: the full rate.
    updates, _ = tx.update(grads, tx.init(old[group]))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a, b, rtol=1e-5, atol=1e-7), state.params[group],
        optax.apply_updates(old[group], updates))
  np.testing.assert_allclose(m['loss'], m['policy/loss'] + m['bc_true/loss'],
                             rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, state.params['idm'], old['idm'])
  policy = jax.tree.map(np.asarray, state.params['policy'])
  state, m = idm_step(state, jax.device_put(
      {'obs': batch['true']['obs'], 'next_obs': batch['labelled']['obs'],
       'action': batch['true']['action']}, batch_sharding(MESH)),
      jax.random.key(0))
  assert 'idm/loss' in m and int(state.step) == 2
  jax.tree.map(np.testing.assert_array_equal, state.params['policy'], policy)


def _sample(data, rng):
  idx = rng.integers(0, len(data['obs']), CFG.batch_size)
  return {k: v[idx].astype(np.float32) for k, v in data.items()}


@pytest.fixture(scope='module')
def stage_run(data):
  """The stage's loop: idm_steps on embodiment transitions, then the
  observation-only demos labelled by the inverse model, then bc_steps
  training 'policy' on those and 'bc_true' on the expert's true actions."""
  embodiment, expert, demos = data
  state, idm_step, bc_step = _stage()
  put = lambda batch: jax.device_put(batch, batch_sharding(MESH))
  rng, key = np.random.default_rng(0), jax.random.key(0)
  emb = E.transitions(embodiment, keys=('obs', 'action'))
  for _ in range(CFG.idm_steps):
    state, idm_m = idm_step(state, put(_sample(emb, rng)), key)
  idm = jax.device_get(state.params['idm'])
  labelled = E.transitions(bco.infer_actions(idm, demos, 2, CFG),
                           keys=('obs', 'action'))
  true = E.transitions(expert, keys=('obs', 'action'))
  for _ in range(CFG.bc_steps):
    state, bc_m = bc_step(state, put({'labelled': _sample(labelled, rng),
                                      'true': _sample(true, rng)}), key)
  return jax.device_get(state.params), float(idm_m['idm/loss']), {
      k: float(v) for k, v in bc_m.items()}


def test_inverse_dynamics_recovers_actions(data, stage_run):
  _, expert, _ = data
  params, idm_loss, _ = stage_run
  assert idm_loss < 1e-3
  labelled = bco.infer_actions(params['idm'], expert, 2, CFG)
  for ep, true in zip(labelled, expert):
    np.testing.assert_array_equal(ep['action'][0], 0)  # format: no action yet
    np.testing.assert_array_equal(ep['true_action'], true['action'])
  err = np.concatenate([ep['action'][1:] - t['action'][1:]
                        for ep, t in zip(labelled, expert)])
  scale = np.abs(np.concatenate([t['action'][1:] for t in expert])).mean()
  assert scale > 0.1  # the actions are not trivially small
  assert np.abs(err).mean() < 0.1 * scale


def test_bco_recovers_linear_expert_from_observations(data, stage_run):
  _, expert, _ = data
  params, _, _ = stage_run
  obs = np.concatenate([ep['obs'] for ep in expert])
  pred = np.asarray(bco.bc_policy(params['policy'], obs, 2, CFG))
  scale = np.abs(obs @ K.T).mean()
  assert np.abs(pred - obs @ K.T).mean() < 0.1 * scale
  act_fn = bco.bc_act_fn(params['policy'], 2, CFG)
  np.testing.assert_allclose(act_fn({'obs': obs[3]}, jax.random.PRNGKey(0)),
                             pred[3], rtol=1e-5, atol=1e-6)


def test_bc_with_true_actions(data, stage_run):
  _, expert, _ = data
  params, _, metrics = stage_run
  assert metrics['bc_true/loss'] < 1e-3
  obs = np.concatenate([ep['obs'] for ep in expert])
  pred = np.asarray(bco.bc_policy(params['bc_true'], obs, 2, CFG))
  assert np.abs(pred - obs @ K.T).mean() < 0.03 * np.abs(obs @ K.T).mean()


def test_demos_without_actions_have_no_true_actions_to_clone(data):
  _, _, demos = data
  with pytest.raises(KeyError, match='action'):
    E.transitions(demos, keys=('obs', 'action'))
