"""SAC losses and its update on the training core against NumPy and against
the three-optimiser update from the formulas; a smoke run."""

import math

import jax
import numpy as np
import optax
import pytest

from jaxreason.imitation import envs
from jaxreason.imitation import episodes as E
from jaxreason.imitation import networks
from jaxreason.imitation import sac

# One config and walker's dims (D=24, A=6) throughout, so `act` compiles
# once for the whole file.
CFG = sac.SACConfig(hidden=(16, 16), batch_size=32, random_steps=100,
                    discount=0.9, tau=0.1, init_temperature=0.5,
                    temperature_lr=1e-2)
D, A = 24, 6
SAC = sac.SAC(CFG, A)
MESH = sac.single_device_mesh()


def np_log_prob(mean, log_std, u):
  """log N(u; mean, std) - log(1 - tanh(u)^2), summed over the last axis."""
  mean, log_std, u = (np.asarray(x, np.float64) for x in (mean, log_std, u))
  std = np.exp(log_std)
  gauss = (-0.5 * ((u - mean) / std)**2 - np.log(std) -
           0.5 * np.log(2 * np.pi))
  return (gauss - np.log(1.0 - np.tanh(u)**2)).sum(-1)


def test_tanh_gaussian_log_prob_matches_numpy():
  rng = np.random.default_rng(0)
  mean, log_std, u = (rng.normal(size=(4, 3)).astype(np.float32)
                      for _ in range(3))
  got = networks.tanh_gaussian_log_prob(mean, log_std, u)
  np.testing.assert_allclose(got, np_log_prob(mean, log_std, u), rtol=1e-5,
                             atol=1e-5)
  # Stable where the naive log(1 - tanh^2) underflows: -> log 4 - 2|u|.
  big = networks.tanh_log_det_jacobian(np.float32(20.0))
  assert big == pytest.approx(math.log(4.0) - 40.0, abs=1e-4)


def test_tanh_gaussian_density_integrates_to_one():
  """The Jacobian term makes exp(log_prob) a density over actions in (-1, 1)."""
  a = np.linspace(-1, 1, 400_001)[1:-1]
  logp = networks.tanh_gaussian_log_prob(
      np.full((a.size, 1), 0.3, np.float32),
      np.full((a.size, 1), -0.2, np.float32),
      np.arctanh(a)[:, None].astype(np.float32))
  integral = np.sum(np.exp(np.asarray(logp, np.float64))) * (a[1] - a[0])
  assert integral == pytest.approx(1.0, abs=2e-3)


def test_sample_is_reparameterised_tanh():
  key = jax.random.PRNGKey(3)
  mean = np.array([[0.1, -0.5]], np.float32)
  log_std = np.array([[-1.0, 0.3]], np.float32)
  action, log_prob = networks.tanh_gaussian_sample(mean, log_std, key)
  u = mean + np.exp(log_std) * np.asarray(jax.random.normal(key, (1, 2)))
  np.testing.assert_allclose(action, np.tanh(u), rtol=1e-5)
  np.testing.assert_allclose(log_prob, np_log_prob(mean, log_std, u),
                             rtol=1e-5)


def test_loss_formulas_match_numpy():
  rng = np.random.default_rng(1)
  r, q1, q2, nq1, nq2, logp = (rng.normal(size=6) for _ in range(6))
  d = np.array([0, 1, 0, 0, 1, 0], bool)
  alpha, gamma = 0.3, 0.97
  y = r + gamma * (1 - d) * (np.minimum(nq1, nq2) - alpha * logp)
  np.testing.assert_allclose(
      sac.td_target(r, d, nq1, nq2, logp, alpha, gamma), y, rtol=1e-5)
  np.testing.assert_allclose(sac.critic_loss(q1, q2, y),
                             np.mean((q1 - y)**2 + (q2 - y)**2), rtol=1e-5)
  np.testing.assert_allclose(sac.actor_loss(logp, q1, q2, alpha),
                             np.mean(alpha * logp - np.minimum(q1, q2)),
                             rtol=1e-5)
  np.testing.assert_allclose(
      sac.temperature_loss(np.log(alpha), logp, -2.0),
      np.mean(-alpha * (logp - 2.0)), rtol=1e-5)


def _np_mlp(p, x, n, activate_final=False):
  """The shared MLP's params: dense0.. (ReLU), then 'out' if not final."""
  names = [f'dense{i}' for i in range(n if activate_final else n - 1)]
  if not activate_final:
    names.append('out')
  for i, name in enumerate(names):
    x = x @ np.asarray(p[name]['kernel'], np.float64) + np.asarray(
        p[name]['bias'], np.float64)
    if i < n - 1 or activate_final:
      x = np.maximum(x, 0)
  return x


def _np_actor(p, obs, cfg):
  h = _np_mlp(p['torso'], obs, len(cfg.hidden), activate_final=True)
  out = h @ np.asarray(p['head']['kernel']) + np.asarray(p['head']['bias'])
  mean, raw = np.split(out, 2, axis=-1)
  lo, hi = cfg.log_std_min, cfg.log_std_max
  return mean, lo + 0.5 * (hi - lo) * (np.tanh(raw) + 1)


def _np_critic(p, obs, action, cfg):
  x = np.concatenate([obs, action], -1)
  n = len(cfg.hidden) + 1
  return _np_mlp(p['q1'], x, n)[:, 0], _np_mlp(p['q2'], x, n)[:, 0]


def _fresh_state(target_shift=True):
  """A state whose target critic differs from the critic (mix-ups show)."""
  state, shardings = SAC.init_state(D, jax.random.PRNGKey(0), MESH)
  if target_shift:
    state = state.replace(params={**state.params, 'target_critic': jax.tree.map(
        lambda x: 0.5 * x + 0.1, state.params['critic'])})
  return state, shardings


def _batch(B):
  rng = np.random.default_rng(2)
  batch = {'obs': rng.normal(size=(B, D)), 'next_obs': rng.normal(size=(B, D)),
           'action': rng.uniform(-1, 1, (B, A)), 'reward': rng.normal(size=B),
           'is_terminal': np.arange(B) % 3 == 1}
  return {k: v.astype(np.float32) if v.dtype == np.float64 else v
          for k, v in batch.items()}


def test_update_matches_numpy_reference():
  cfg, B = CFG, CFG.batch_size
  state, shardings = _fresh_state()
  old = jax.tree.map(np.asarray, state.params)
  batch = _batch(B)
  key = jax.random.PRNGKey(7)
  new, m = SAC.make_update(shardings, MESH)(state, batch, key)

  # make_train_step folds the step (0) into the rng; SAC splits the result.
  next_key, pi_key = jax.random.split(jax.random.fold_in(key, 0))
  eps_next = np.asarray(jax.random.normal(next_key, (B, A)), np.float64)
  eps_pi = np.asarray(jax.random.normal(pi_key, (B, A)), np.float64)
  alpha, entropy_target = 0.5, -A
  mean, log_std = _np_actor(old['actor'], batch['next_obs'], cfg)
  u = mean + np.exp(log_std) * eps_next
  next_logp = np_log_prob(mean, log_std, u)
  tq1, tq2 = _np_critic(old['target_critic'], batch['next_obs'], np.tanh(u),
                        cfg)
  y = batch['reward'] + cfg.discount * (1 - batch['is_terminal']) * (
      np.minimum(tq1, tq2) - alpha * next_logp)
  q1, q2 = _np_critic(old['critic'], batch['obs'], batch['action'], cfg)
  mean, log_std = _np_actor(old['actor'], batch['obs'], cfg)
  u = mean + np.exp(log_std) * eps_pi
  logp = np_log_prob(mean, log_std, u)
  pq1, pq2 = _np_critic(old['critic'], batch['obs'], np.tanh(u), cfg)

  tol = dict(rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(m['target_q_mean'], y.mean(), **tol)
  np.testing.assert_allclose(m['q_mean'], q1.mean(), **tol)
  c_loss = np.mean((q1 - y)**2 + (q2 - y)**2)
  a_loss = np.mean(alpha * logp - np.minimum(pq1, pq2))
  t_loss = np.mean(-alpha * (logp + entropy_target))
  np.testing.assert_allclose(m['critic_loss'], c_loss, **tol)
  np.testing.assert_allclose(m['actor_loss'], a_loss, **tol)
  np.testing.assert_allclose(m['temperature_loss'], t_loss, **tol)
  np.testing.assert_allclose(m['loss'], c_loss + a_loss + t_loss, **tol)
  np.testing.assert_allclose(m['entropy'], -logp.mean(), **tol)
  np.testing.assert_allclose(m['alpha'], alpha, rtol=1e-6)
  # d(temperature loss)/d(log_alpha) = t_loss; Adam's first step moves
  # log_alpha by -lr * sign(gradient).
  np.testing.assert_allclose(m['grad_norm/log_alpha'], abs(t_loss), **tol)
  np.testing.assert_allclose(
      new.params['log_alpha'],
      np.log(alpha) - cfg.temperature_lr * np.sign(t_loss), rtol=1e-4)
  # Polyak: target <- tau * new critic + (1 - tau) * old target.
  jax.tree.map(
      lambda t, c, o: np.testing.assert_allclose(
          t, cfg.tau * np.asarray(c) + (1 - cfg.tau) * o, rtol=1e-5,
          atol=1e-7),
      new.params['target_critic'], new.params['critic'],
      old['target_critic'])
  assert int(new.step) == 1


def _three_optimiser_update(params, batch, key):
  """The previous SAC update, from the formulas: each loss differentiated
  alone w.r.t. its own parameters (the others held fixed), at the same
  parameters, then three separate Adams and the Polyak target."""
  actor, critic, cfg = SAC.actor, SAC.critic, CFG
  next_key, pi_key = jax.random.split(key)
  alpha = np.exp(params['log_alpha'])
  next_action, next_logp = actor.apply({'params': params['actor']},
                                       batch['next_obs'], next_key,
                                       method='sample')
  nq1, nq2 = critic.apply({'params': params['target_critic']},
                          batch['next_obs'], next_action)
  y = sac.td_target(batch['reward'], batch['is_terminal'], nq1, nq2,
                    next_logp, alpha, cfg.discount)

  def critic_loss(p):
    q1, q2 = critic.apply({'params': p}, batch['obs'], batch['action'])
    return sac.critic_loss(q1, q2, y)

  def actor_loss(p):
    action, logp = actor.apply({'params': p}, batch['obs'], pi_key,
                               method='sample')
    q1, q2 = critic.apply({'params': params['critic']}, batch['obs'], action)
    return sac.actor_loss(logp, q1, q2, alpha), logp

  c_grads = jax.grad(critic_loss)(params['critic'])
  a_grads, logp = jax.grad(actor_loss, has_aux=True)(params['actor'])
  t_grad = jax.grad(sac.temperature_loss)(params['log_alpha'], logp,
                                          SAC.target_entropy)
  out = dict(params)
  for name, g, lr in (('actor', a_grads, cfg.actor_lr),
                      ('critic', c_grads, cfg.critic_lr),
                      ('log_alpha', t_grad, cfg.temperature_lr)):
    tx = optax.adam(lr)
    updates, _ = tx.update(g, tx.init(params[name]))
    out[name] = optax.apply_updates(params[name], updates)
  out['target_critic'] = jax.tree.map(
      lambda c, t: cfg.tau * c + (1 - cfg.tau) * t, out['critic'],
      params['target_critic'])
  norms = {'actor': optax.global_norm(a_grads),
           'critic': optax.global_norm(c_grads)}
  return out, norms


def test_core_step_equals_three_separate_optimisers():
  """The summed one-step update on the core is the three-optimiser update:
  each group's gradient of the sum is its own loss's (the stop_gradients);
  e.g. without stop_gradient(critic) in the actor loss the critic's step
  would differ."""
  state, shardings = _fresh_state()
  update = SAC.make_update(shardings, MESH)
  params = jax.tree.map(np.asarray, state.params)
  key = jax.random.PRNGKey(11)
  batch = _batch(CFG.batch_size)
  # Step 1 vs the reference from the same params and key.
  state, m = update(state, batch, key)
  ref_params, norms = _three_optimiser_update(
      params, batch, jax.random.fold_in(key, 0))
  for group in ('actor', 'critic', 'log_alpha', 'target_critic'):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6),
        state.params[group], ref_params[group])
  for group in ('actor', 'critic'):
    np.testing.assert_allclose(m[f'grad_norm/{group}'], norms[group],
                               rtol=1e-4)
  # The groups moved (the comparison above is not between unchanged params).
  assert not np.allclose(state.params['critic']['q1']['out']['kernel'],
                         params['critic']['q1']['out']['kernel'])
  assert not np.allclose(state.params['actor']['head']['kernel'],
                         params['actor']['head']['kernel'])


def test_act_shapes_and_modes():
  state, _ = SAC.init_state(D, jax.random.PRNGKey(0), MESH)
  actor = state.params['actor']
  obs = np.ones((4, D), np.float32)
  k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
  assert sac.act(SAC, actor, obs[0], k1, deterministic=False).shape == (A,)
  det = sac.act(SAC, actor, obs, k1, deterministic=True)
  np.testing.assert_array_equal(det, sac.act(SAC, actor, obs, k2,
                                             deterministic=True))
  s1 = sac.act(SAC, actor, obs, k1, deterministic=False)
  s2 = sac.act(SAC, actor, obs, k2, deterministic=False)
  assert s1.shape == (4, A) and np.all(np.abs(s1) < 1)
  assert not np.allclose(s1, s2)


def test_train_sac_smoke_on_walker():
  env = envs.make_env('walker-stand', action_repeat=2, seed=0, max_steps=50)
  infos = []
  buffer = E.ReplayBuffer(capacity=1000, action_dim=A)
  state, episodes = sac.train_sac(
      env, CFG, steps=300, seed=0, buffer=buffer,
      on_episode=lambda ep, info: infos.append(info))
  assert len(episodes) == 6 and [i['step'] for i in infos] == list(
      range(50, 301, 50))
  assert all(ep['obs'].shape == (51, 24) for ep in episodes)
  assert infos[0]['metrics'] == {} and infos[1]['metrics'] == {}
  for info in infos[2:]:
    assert set(info['metrics']) >= {'critic_loss', 'actor_loss', 'alpha',
                                    'q_mean'}
    assert all(np.isfinite(v) for v in info['metrics'].values())
  assert int(state.step) == 200
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state))
  assert abs(infos[-1]['metrics']['alpha'] - 0.5) > 1e-3  # it is tuned
  assert buffer.num_steps == 300 and buffer.episodes[0] is episodes[0]
  # Continuing with the state and buffer: no second random phase.
  state, more = sac.train_sac(env, CFG, steps=50, seed=0, state=state,
                              buffer=buffer)
  assert int(state.step) == 250 and len(more) == 1
