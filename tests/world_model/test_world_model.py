"""WorldModel and networks: shapes, jit, likelihoods, action-free, training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from jaxreason.models.world_model import (MLPEncoder, RSSMConfig, ScalarHead,
                                          WorldModel, WorldModelConfig,
                                          features, make_world_model_loss)

B, T, D, A = 2, 4, 6, 3
TINY_RSSM = dict(deter_dim=8, stoch_dim=4, hidden_dim=8)


def state_model(**kw):
  cfg = WorldModelConfig(obs_dim=D, action_dim=A, rssm=TINY_RSSM, embed_dim=8,
                         mlp_hidden=16, mlp_layers=1, head_hidden=8,
                         head_layers=1, **kw)
  return WorldModel(cfg)


def batch(seed=0):
  rng = np.random.default_rng(seed)
  first = np.zeros((B, T), bool)
  first[:, 0] = True
  return {'obs': jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32),
          'action': jnp.asarray(rng.uniform(-1, 1, (B, T, A)), jnp.float32),
          'is_first': jnp.asarray(first),
          'reward': jnp.asarray(rng.normal(size=(B, T)), jnp.float32)}


@pytest.fixture(scope='module')
def state_wm():
  """A tiny state model with a reward head: params and jitted apply."""
  model = state_model(reward_head=True)
  b = batch()
  params = jax.jit(model.init)(jax.random.key(0), b['obs'], b['action'],
                               b['is_first'], jax.random.key(1))
  return model, params, jax.jit(model.apply), b


def test_mlp_encoder_and_scalar_head_shapes():
  x = jnp.ones((B, T, D))
  mlp, head = MLPEncoder(16, 2, 8, symlog_inputs=True), ScalarHead(8, 2)

  @jax.jit
  def run(key):
    return mlp.apply(mlp.init(key, x), x), head.apply(head.init(key, x), x)

  embed, value = run(jax.random.key(0))
  assert embed.shape == (B, T, 8) and value.shape == (B, T)


def test_pixel_world_model_jits_on_uint8():
  cfg = WorldModelConfig(obs_kind='pixels', action_dim=A,
                         rssm=RSSMConfig(**TINY_RSSM), cnn_depth=4)
  model = WorldModel(cfg)
  b = jax.tree.map(lambda x: x[:1, :2], batch())
  img = np.random.default_rng(0).integers(0, 256, (1, 2, 64, 64, 3))
  img = jnp.asarray(img, jnp.uint8)
  b = dict(b, obs=img)

  @jax.jit
  def run(key):
    params = model.init(key, img, b['action'], b['is_first'], key)
    out = model.apply(params, img, b['action'], b['is_first'], key)
    recon = model.apply(params, out['features'], method=WorldModel.decode)
    embed = model.apply(params, img, method=WorldModel.encode)
    return params['params'], out, recon, embed

  params, out, recon, embed = run(jax.random.key(0))
  assert recon.shape == (1, 2, 64, 64, 3) and recon.dtype == jnp.float32
  # DreamerV1/2 conv sizes at depth 4: 64 -> 31 -> 14 -> 6 -> 2, so the
  # embedding is 2 * 2 * 32 = 128 = 32 * depth wide.
  conv = [params['encoder'][f'conv{i}']['kernel'].shape for i in range(4)]
  assert conv == [(4, 4, 3, 4), (4, 4, 4, 8), (4, 4, 8, 16), (4, 4, 16, 32)]
  assert params['rssm']['obs_out']['dense0']['kernel'].shape[0] == 8 + 128
  deconv = [params['decoder'][f'deconv{i}']['kernel'].shape for i in range(4)]
  assert deconv == [(5, 5, 128, 16), (5, 5, 16, 8), (6, 6, 8, 4),
                    (6, 6, 4, 3)]
  assert embed.shape == (1, 2, 128)
  # Integer pixels are scaled to [-0.5, 0.5] for the likelihood.
  want = stats.norm.logpdf(np.asarray(img) / 255.0 - 0.5,
                           np.asarray(recon)).sum((2, 3, 4))
  np.testing.assert_allclose(out['recon_loglik'], want, rtol=1e-4)


def test_state_log_likelihood_and_reward_head(state_wm):
  model, params, apply, b = state_wm
  out = apply(params, b['obs'], b['action'], b['is_first'], jax.random.key(1))
  assert out['features'].shape == (B, T, 12)
  np.testing.assert_allclose(out['features'], features(out['post']))
  mean = jax.jit(lambda p, f: model.apply(p, f, method=WorldModel.decode))(
      params, out['features'])
  np.testing.assert_allclose(
      out['recon_loglik'], stats.norm.logpdf(b['obs'], mean).sum(-1),
      rtol=1e-5)
  assert out['reward'].shape == (B, T)


def test_action_free_model_ignores_actions(state_wm):
  model, params, apply, b = state_wm
  run = lambda a: apply(params, b['obs'], a, b['is_first'],
                        jax.random.key(1))['post'].mean
  assert not np.allclose(run(b['action']), run(-b['action']))
  model = state_model(action_free=True)
  params = jax.jit(model.init)(jax.random.key(0), b['obs'], b['action'],
                               b['is_first'], jax.random.key(1))
  assert params['params']['rssm']['img_in']['dense0']['kernel'].shape[0] == 4
  apply = jax.jit(model.apply)
  run = lambda a: apply(params, b['obs'], a, b['is_first'],
                        jax.random.key(1))['post'].mean
  np.testing.assert_array_equal(run(b['action']), run(-b['action']))


def test_world_model_trains_on_a_fixed_batch(state_wm):
  model, params, apply, b = state_wm
  loss_fn = make_world_model_loss(model, free_nats=0.0)
  opt = optax.adam(3e-3)

  @jax.jit
  def step(params, opt_state, rng):
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, b,
                                                                 rng)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  # The first loss, from NumPy: recon + balanced KL (value = KL) + reward.
  out = apply(params, b['obs'], b['action'], b['is_first'], jax.random.key(0))
  post, prior = [jax.tree.map(np.asarray, out[k]) for k in ('post', 'prior')]
  kl = (np.log(prior.std / post.std) + (post.std**2 + (post.mean - prior.mean)
                                        **2) / (2 * prior.std**2) - 0.5).sum(-1)
  want = (-np.mean(out['recon_loglik']) + kl.mean() + 0.5 * np.mean(
      (np.asarray(out['reward']) - np.asarray(b['reward']))**2))
  opt_state = opt.init(params)
  losses = []
  for i in range(40):
    params, opt_state, loss = step(params, opt_state, jax.random.key(i))
    losses.append(float(loss))
  assert losses[0] == pytest.approx(float(want), rel=1e-5)
  assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_config_from_dict_and_validation():
  cfg = WorldModelConfig(obs_dim=3, rssm={'deter_dim': 16, 'stoch_dim': 2})
  assert cfg.rssm == RSSMConfig(deter_dim=16, stoch_dim=2)
  assert cfg.feature_dim == 18
  with pytest.raises(ValueError):
    WorldModelConfig(obs_kind='video', obs_dim=3)
  with pytest.raises(ValueError):
    WorldModelConfig(obs_kind='state')
