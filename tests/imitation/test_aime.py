"""AIME / AIME-v2 losses: a known linear-Gaussian system, NumPy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreason.imitation import aime
from jaxreason.models.world_model import (RSSMState, WorldModel,
                                          WorldModelConfig, WorldModelFns,
                                          features, world_model_fns)

SP, SO = 0.1, 0.1  # transition (prior) and observation std of the toy system
LOG_2PI = np.log(2 * np.pi)


@pytest.fixture(autouse=True, scope='module')
def _fast_threefry():
  # See tests/world_model/conftest.py: 10x faster compiles of random ops on
  # the CPU; results are compared with the same keys, whatever the bits.
  with jax.threefry_partitionable(False):
    yield


# -- a world model whose answer is known --------------------------------------


def linear_gaussian_fns(dim: int, goal: float = 1.0) -> WorldModelFns:
  """s_t = s_{t-1} + a_{t-1} + N(0, SP^2), o_t = s_t + N(0, SO^2).

  No parameters; deter is empty, so features = stoch. The posterior is the
  exact Gaussian one. Reward -(s - goal)^2 summed (for imagination tests).
  """

  def initial(params, b):
    z = jnp.zeros((b, dim))
    return RSSMState(jnp.zeros((b, 0)), z, z, jnp.ones_like(z))

  def img_step(params, state, action, rng):
    mean = state.stoch + action
    std = jnp.full_like(mean, SP)
    stoch = mean + std * jax.random.normal(rng, mean.shape)
    return RSSMState(state.deter, stoch, mean, std)

  def obs_step(params, state, action, embed, first, rng):
    f = first[:, None]
    state = jax.tree.map(lambda i, x: jnp.where(f, i, x),
                         initial(params, embed.shape[0]), state)
    action = jnp.where(f, 0.0, action)
    k_prior, k_post = jax.random.split(rng)
    prior = img_step(params, state, action, k_prior)
    prec = 1 / SP**2 + 1 / SO**2
    mean = (prior.mean / SP**2 + embed / SO**2) / prec
    std = jnp.full_like(mean, prec**-0.5)
    post = RSSMState(prior.deter, mean + std * jax.random.normal(k_post,
                                                                 mean.shape),
                     mean, std)
    return post, prior

  def log_likelihood(params, feats, obs):
    return (-0.5 * ((obs - feats) / SO)**2 - np.log(SO) - 0.5 * LOG_2PI).sum(-1)

  return WorldModelFns(
      encode=lambda params, obs: obs, initial=initial, obs_step=obs_step,
      img_step=img_step, log_likelihood=log_likelihood,
      reward=lambda params, feats: -jnp.square(feats - goal).sum(-1))


def tanh_gaussian_policy(params, feats, rng, std=0.1):
  """State-independent tanh-Gaussian: a = tanh(mu + std * eps)."""
  eps = jax.random.normal(rng, (feats.shape[0],) + params['mu'].shape)
  u = params['mu'] + std * eps
  logp = (-0.5 * eps**2 - np.log(std) - 0.5 * LOG_2PI
          - jnp.log(1 - jnp.tanh(u)**2 + 1e-6)).sum(-1)
  return jnp.tanh(u), logp


def demo(a_star, b=8, t=10):
  """Noise-free demonstration o_t = t * a_star from o_0 = 0."""
  obs = jnp.arange(t, dtype=jnp.float32)[None, :, None] * a_star
  first = jnp.zeros((b, t), bool).at[:, 0].set(True)
  return jnp.broadcast_to(obs, (b, t, a_star.shape[0])), first


def adam_fit(loss_fn, params, steps, lr):
  opt = optax.adam(lr)

  @jax.jit
  def step(params, opt_state, rng):
    grads = jax.grad(lambda p: loss_fn(p, rng)[0])(params)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state

  opt_state = opt.init(params)
  for i in range(steps):
    params, opt_state = step(params, opt_state, jax.random.key(i))
  return params


def test_aime_recovers_the_demonstrators_action():
  """Policy-as-posterior: the policy mean moves from -0.46 to a*."""
  a_star = jnp.array([0.5, -0.3])
  wm = linear_gaussian_fns(2)
  obs, first = demo(a_star)
  loss_fn = lambda p, rng: aime.aime_loss(None, p, wm, tanh_gaussian_policy,
                                          obs, first, rng)
  params = adam_fit(loss_fn, {'mu': jnp.array([-0.5, 0.5])}, 150, 0.05)
  np.testing.assert_allclose(jnp.tanh(params['mu']), a_star, atol=0.03)


def test_aime_inverse_dynamics_variant_recovers_the_action():
  """q(a | s, o') = c (o' - s) + b samples; the policy learns from KL(q||pi)."""
  a_star = jnp.array([0.4])
  wm = linear_gaussian_fns(1)
  obs, first = demo(a_star)

  def inverse_fn(params, feats, embed, rng):
    eps = jax.random.normal(rng, embed.shape)
    a = params['c'] * (embed - feats) + params['b'] + 0.05 * eps
    return a, (-0.5 * eps**2 - np.log(0.05) - 0.5 * LOG_2PI).sum(-1)

  def policy_log_prob(params, feats, action):
    std = jnp.exp(params['log_std'])
    return (-0.5 * ((action - params['mu']) / std)**2 - jnp.log(std)
            - 0.5 * LOG_2PI).sum(-1)

  def loss_fn(p, rng):
    return aime.aime_loss(None, p['pi'], wm, None, obs, first, rng,
                          inverse_fn=inverse_fn, inverse_params=p['q'],
                          policy_log_prob_fn=policy_log_prob)

  params = {'pi': {'mu': jnp.array([-0.5]), 'log_std': jnp.zeros(1)},
            'q': {'c': jnp.array([0.2]), 'b': jnp.zeros(1)}}
  params = adam_fit(loss_fn, params, 200, 0.05)
  np.testing.assert_allclose(params['pi']['mu'], a_star, atol=0.05)


# -- the real world model -----------------------------------------------------

B, T, D, A = 2, 5, 4, 2


def tiny_model(**kw):
  return WorldModel(WorldModelConfig(
      obs_dim=D, action_dim=A, rssm=dict(deter_dim=8, stoch_dim=4,
                                         hidden_dim=8),
      embed_dim=8, mlp_hidden=8, mlp_layers=1, head_hidden=8, head_layers=1,
      **kw))


@pytest.fixture(scope='module')
def real():
  rng = np.random.default_rng(0)
  obs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
  actions = jnp.asarray(rng.uniform(-1, 1, (B, T, A)), jnp.float32)
  first = jnp.zeros((B, T), bool).at[:, 0].set(True).at[1, 3].set(True)
  model = tiny_model(reward_head=True)
  params = jax.jit(model.init)(jax.random.key(0), obs, actions, first,
                               jax.random.key(1))
  return model, params, obs, actions, first


def linear_policy(params, feats, rng):
  u = feats @ params['w'] + 0.1 * jax.random.normal(rng, (feats.shape[0], A))
  return jnp.tanh(u), -jnp.square(u).sum(-1)


def test_fns_observe_matches_module_observe(real):
  model, params, obs, actions, first = real
  rng = jax.random.key(5)
  want = jax.jit(functools.partial(model.apply, method=WorldModel.observe))(
      params, obs, actions, first, rng)
  got = jax.jit(lambda *a: aime.observe(world_model_fns(model), *a))(
      params, obs, actions, first, rng)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5), got,
               want)


def test_aime_loss_freezes_the_world_model(real):
  model, params, obs, _, first = real
  pol = {'w': 0.1 * jnp.ones((12, A))}

  @jax.jit
  def grads(params, pol):
    return jax.grad(lambda wp, pp: aime.aime_loss(
        wp, pp, world_model_fns(model), linear_policy, obs, first,
        jax.random.key(0), free_nats=0.5, kl_balance=0.8)[0],
                    argnums=(0, 1))(params, pol)

  g_wm, g_pol = grads(params, pol)
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(g_wm))
  assert float(jnp.abs(g_pol['w']).max()) > 0


def test_surrogate_reward_matches_numpy(real):
  _, _, obs, _, first = real
  model = tiny_model(action_free=True)
  params = jax.jit(model.init)(jax.random.key(3), obs, None, first,
                               jax.random.key(1))
  rng = jax.random.key(4)
  reward = jax.jit(lambda p: aime.surrogate_reward(
      p, world_model_fns(model), obs, first, rng))(params)
  @jax.jit
  def reference_inputs(params):
    post, prior = model.apply(params, obs, None, first, rng,
                              method=WorldModel.observe)
    return post, prior, model.apply(params, features(post),
                                    method=WorldModel.decode)

  post, prior, mean = reference_inputs(params)
  loglik = (-0.5 * (np.asarray(obs) - mean)**2 - 0.5 * LOG_2PI).sum(-1)
  mq, sq, mp, sp = (np.asarray(x, np.float64) for x in
                    (post.mean, post.std, prior.mean, prior.std))
  kl = (np.log(sp / sq) + (sq**2 + (mq - mp)**2) / (2 * sp**2) - 0.5).sum(-1)
  x = loglik - kl
  assert reward.shape == (B, T)
  np.testing.assert_allclose(reward, np.sign(x) * np.log1p(np.abs(x)),
                             rtol=1e-4, atol=1e-5)


def test_reward_head_loss_matches_numpy(real):
  model, params, *_ = real
  feats = jnp.asarray(np.random.default_rng(1).normal(size=(B, T, 12)),
                      jnp.float32)
  targets = jnp.arange(B * T, dtype=jnp.float32).reshape(B, T) / 10
  loss, m, pred = jax.jit(lambda p: aime.reward_head_loss(
      p, world_model_fns(model), feats, targets) + (
          model.apply(p, feats, method=WorldModel.reward),))(params)
  want = 0.5 * np.mean((np.asarray(pred) - np.asarray(targets))**2)
  assert float(loss) == pytest.approx(want, rel=1e-5)
  assert float(m['reward_target']) == pytest.approx(float(targets.mean()))


def test_imagine_rollout_matches_module_imagine(real):
  model, params, obs, actions, first = real
  post = RSSMState(*(jax.random.normal(jax.random.key(i), (B, T, n))
                      for i, n in enumerate((8, 4, 4, 4))))
  start = aime.flatten_states(post)  # [B * T]
  pol = {'w': jnp.asarray(np.random.default_rng(2).normal(size=(12, A)),
                          jnp.float32)}
  rng = jax.random.key(8)
  roll = jax.jit(lambda s: aime.imagine_rollout(
      params, world_model_fns(model), pol, linear_policy, s, 3, rng))(start)
  states, acts, aux = jax.jit(lambda s: model.apply(
      params, s, functools.partial(linear_policy, pol), 3, rng,
      method=WorldModel.imagine))(start)
  assert roll.features.shape == (B * T, 4, 12) and roll.actions.shape == (
      B * T, 3, A)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5),
               roll.states, states)
  np.testing.assert_allclose(roll.actions, acts, atol=1e-6)
  np.testing.assert_allclose(roll.log_probs, aux, atol=1e-5)


# -- actor-critic in imagination ---------------------------------------------


def value_fn(params, feats):
  return feats @ params['v'] + params['c']


def test_actor_critic_losses_match_numpy_and_split_gradients():
  wm = linear_gaussian_fns(1)
  n, h, gamma, lam, ent = 4, 5, 0.9, 0.8, 0.01
  start = RSSMState(jnp.zeros((n, 0)), *(jnp.full((n, 1), 0.2),) * 2,
                    jnp.full((n, 1), SP))
  pol = {'mu': jnp.array([0.1])}
  val = {'v': jnp.array([0.5]), 'c': jnp.array(0.3)}
  tgt = {'v': jnp.array([-0.2]), 'c': jnp.array(0.1)}
  rng = jax.random.key(2)
  kw = dict(horizon=h, gamma=gamma, lambda_=lam, entropy_weight=ent)

  def loss(pol, val, actor_weight=1.0, value_weight=1.0):
    return aime.actor_critic_losses(None, pol, val, tgt, wm,
                                    tanh_gaussian_policy, value_fn, start, rng,
                                    actor_weight=actor_weight,
                                    value_weight=value_weight, **kw)

  total, m = jax.jit(loss)(pol, val)
  roll = jax.jit(lambda p: aime.imagine_rollout(
      None, wm, p, tanh_gaussian_policy, start, h, rng))(pol)
  s = np.asarray(roll.features)[..., 0]  # [N, H + 1]
  r = -(s[:, 1:] - 1.0)**2
  v_tgt = -0.2 * s + 0.1
  ret = np.zeros((n, h))
  nxt = v_tgt[:, h]
  for t in reversed(range(h)):
    nxt = r[:, t] + gamma * ((1 - lam) * v_tgt[:, t + 1] + lam * nxt)
    ret[:, t] = nxt
  entropy = -np.asarray(roll.log_probs).mean()
  actor = -ret.mean() - ent * entropy
  value = np.mean(0.5 * (0.5 * s[:, :-1] + 0.3 - ret)**2)
  assert float(m['actor_loss']) == pytest.approx(actor, rel=1e-4)
  assert float(m['value_loss']) == pytest.approx(value, rel=1e-4)
  assert float(total) == pytest.approx(actor + value, rel=1e-4)

  assert float(m['return_scale']) == 1.0  # Normalisation off.

  # DreamerV3 return normalisation: the running scale takes in this batch's
  # P95 - P5 range of the returns and divides the actor's return term (not
  # the entropy bonus, not the critic's targets) by max(floor, scale).
  for prev, floor in ((40.0, 1.0), (0.0, 1.0), (40.0, 100.0)):
    _, mn = jax.jit(lambda pol, val, prev=prev, floor=floor: (
        aime.actor_critic_losses(None, pol, val, tgt, wm, tanh_gaussian_policy,
                                 value_fn, start, rng, return_scale=prev,
                                 scale_decay=0.9, scale_floor=floor, **kw)))(
                                     pol, val)
    lo, hi = np.percentile(ret, [5, 95])
    scale = 0.9 * prev + 0.1 * (hi - lo)
    assert float(mn['return_scale']) == pytest.approx(scale, rel=1e-4)
    want = -ret.mean() / max(floor, scale) - ent * entropy
    assert float(mn['actor_loss']) == pytest.approx(want, rel=1e-4)
    assert float(mn['value_loss']) == pytest.approx(value, rel=1e-4)

  grad = jax.jit(jax.grad(lambda *a: loss(*a)[0], argnums=(0, 1)))
  g_pol, g_val = grad(pol, val, 0.0, 1.0)
  assert float(jnp.abs(g_pol['mu']).max()) == 0  # value loss: not the actor
  assert float(jnp.abs(g_val['v']).max()) > 0
  g_pol, g_val = grad(pol, val, 1.0, 0.0)
  assert float(jnp.abs(g_val['v']).max()) == 0  # actor loss: not the critic
  assert float(jnp.abs(g_pol['mu']).max()) > 0


def test_actor_learns_to_move_toward_the_reward():
  """Reward -(s - 1)^2 from s_0 = 0: dynamics backprop pushes the action up."""
  wm = linear_gaussian_fns(1)
  start = RSSMState(jnp.zeros((8, 0)), *(jnp.zeros((8, 1)),) * 2,
                    jnp.full((8, 1), SP))
  val = {'v': jnp.zeros(1), 'c': jnp.zeros(())}
  loss_fn = lambda pol, rng: aime.actor_critic_losses(
      None, pol, val, val, wm, tanh_gaussian_policy, value_fn, start, rng,
      horizon=5, value_weight=0.0)
  pol = adam_fit(loss_fn, {'mu': jnp.array([-0.3])}, 60, 0.05)
  assert float(pol['mu'][0]) > 0.1


def test_ema_update():
  out = aime.ema_update({'a': jnp.array([1.0, 2.0])}, {'a': jnp.array([3.0,
                                                                       6.0])},
                        0.25)
  np.testing.assert_allclose(out['a'], [1.5, 3.0])


# -- adversarial variant ------------------------------------------------------


def mlp_disc(params, x):
  return jnp.tanh(x @ params['w1']) @ params['w2']


def test_gradient_norms_match_finite_differences():
  rng = np.random.default_rng(3)
  params = {'w1': jnp.asarray(rng.normal(size=(3, 5))),
            'w2': jnp.asarray(rng.normal(size=(5,)))}
  x = rng.normal(size=(4, 3))
  got = aime.gradient_norms(params, mlp_disc, jnp.asarray(x, jnp.float32))
  f = lambda z: np.tanh(z @ np.asarray(params['w1'])) @ np.asarray(params['w2'])
  eps = 1e-5
  fd = np.stack([(f(x + eps * e) - f(x - eps * e)) / (2 * eps)
                 for e in np.eye(3)], -1)  # [4, 3]
  np.testing.assert_allclose(got, np.linalg.norm(fd, axis=-1), rtol=1e-4)


@pytest.mark.parametrize('penalty', ['wgan_gp', 'r1', 'none'])
def test_discriminator_loss_by_hand(penalty):
  """A linear logit w.x + b has input gradient w everywhere."""
  w, b = np.array([0.6, -1.2, 0.4], np.float32), np.float32(0.3)
  disc = lambda p, x: x @ p['w'] + p['b']
  params = {'w': jnp.asarray(w), 'b': jnp.asarray(b)}
  rng = np.random.default_rng(4)
  expert, policy = rng.normal(size=(2, 6, 3)).astype(np.float32)
  loss, m = aime.discriminator_loss(params, disc, expert, policy,
                                    jax.random.key(0), penalty=penalty,
                                    gp_weight=10.0)
  le, lp = expert @ w + b, policy @ w + b
  bce = np.mean(np.log1p(np.exp(-le))) + np.mean(np.log1p(np.exp(lp)))
  gp = {'wgan_gp': (np.linalg.norm(w) - 1)**2, 'r1': np.sum(w**2),
        'none': 0.0}[penalty]
  assert float(m['disc_bce']) == pytest.approx(bce, rel=1e-5)
  assert float(m['grad_penalty']) == pytest.approx(gp, rel=1e-4, abs=1e-6)
  assert float(loss) == pytest.approx(bce + 10 * gp, rel=1e-4)
  assert float(m['expert_acc']) == pytest.approx(np.mean(le > 0))


def test_adversarial_reward_is_log_d_minus_log_one_minus_d():
  disc = lambda p, x: x @ p['w']
  x = np.array([[1.0, 2.0], [-3.0, 0.5]], np.float32)
  params = {'w': jnp.array([0.7, -0.4])}
  d = 1 / (1 + np.exp(-(x @ np.array([0.7, -0.4]))))
  np.testing.assert_allclose(aime.adversarial_reward(params, disc, x),
                             np.log(d) - np.log(1 - d), rtol=1e-5)
