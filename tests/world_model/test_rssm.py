"""RSSM: the scans equal step-by-step loops; resets; the GRU cell in NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.models.world_model import (RSSM, LayerNormGRUCell, RSSMConfig,
                                          RSSMState, features)

CFG = RSSMConfig(deter_dim=8, stoch_dim=4, hidden_dim=8)
B, T, E, A = 3, 6, 5, 2


def close(a, b, atol=1e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=atol), a, b)


@pytest.fixture(scope='module')
def setup():
  rng = np.random.default_rng(0)
  embeds = jnp.asarray(rng.normal(size=(B, T, E)), jnp.float32)
  actions = jnp.asarray(rng.uniform(-1, 1, (B, T, A)), jnp.float32)
  is_first = np.zeros((B, T), bool)
  is_first[:, 0] = True
  is_first[0, 3] = True  # a new episode inside row 0
  is_first[2, 0] = False  # row 2 continues from the initial state
  model = RSSM(CFG)
  params = jax.jit(lambda *a: model.init(*a, method=RSSM.observe))(
      jax.random.key(0), embeds, actions, jnp.asarray(is_first),
      jax.random.key(1))
  fns = {
      'observe': jax.jit(lambda *a: model.apply(params, *a,
                                                method=RSSM.observe)),
      'obs_step': jax.jit(lambda *a: model.apply(params, *a,
                                                 method=RSSM.obs_step)),
  }
  return model, params, embeds, actions, jnp.asarray(is_first), fns


def loop_observe(model, step, embeds, actions, is_first, keys):
  state = model.initial(embeds.shape[0])
  posts, priors = [], []
  for t in range(embeds.shape[1]):
    post, prior = step(state, actions[:, t], embeds[:, t], is_first[:, t],
                       keys[t])
    posts.append(post)
    priors.append(prior)
    state = post
  stack = lambda xs: jax.tree.map(lambda *x: jnp.stack(x, 1), *xs)
  return stack(posts), stack(priors)


def test_observe_scan_equals_obs_step_loop(setup):
  model, _, embeds, actions, is_first, fns = setup
  rng = jax.random.key(7)
  post, prior = fns['observe'](embeds, actions, is_first, rng)
  assert post.deter.shape == (B, T, CFG.deter_dim)
  assert post.stoch.shape == (B, T, CFG.stoch_dim)
  want_post, want_prior = loop_observe(model, fns['obs_step'], embeds, actions,
                                       is_first, jax.random.split(rng, T))
  close(post, want_post)
  close(prior, want_prior)
  np.testing.assert_array_equal(post.deter, prior.deter)
  assert np.all(np.asarray(post.std) >= CFG.min_std)


def test_reset_at_is_first_restarts_the_episode(setup):
  """Row 0 restarts at t=3: its steps 3.. equal a fresh run on steps 3..,
  whatever the carried state and the action at the reset step."""
  model, _, embeds, actions, is_first, fns = setup
  observe = fns['observe']
  rng = jax.random.key(3)
  keys = jax.random.split(rng, T)
  garbage = actions.at[0, 3].set(5.0)  # ignored: the action is zeroed
  post, _ = observe(embeds, garbage, is_first, rng)
  fresh_actions = actions[:, 3:].at[:, 0].set(0.0)
  fresh, _ = loop_observe(model, fns['obs_step'], embeds[:, 3:], fresh_actions,
                          jnp.zeros((B, T - 3), bool), keys[3:])
  close(jax.tree.map(lambda x: x[:1, 3:], post),
        jax.tree.map(lambda x: x[:1], fresh))
  # Without the reset the result differs (the test can fail).
  no_reset, _ = observe(embeds, actions, is_first.at[0, 3].set(False), rng)
  assert not np.allclose(no_reset.mean[0, 3], post.mean[0, 3], atol=1e-3)


def test_imagine_equals_img_step_loop(setup):
  model, params, *_ = setup
  start = RSSMState(*(jax.random.normal(jax.random.key(i), (B, n))
                       for i, n in enumerate((8, 4, 4, 4))))
  w = jnp.asarray(np.random.default_rng(1).normal(size=(CFG.feature_dim, A)),
                  jnp.float32)

  def policy(feats, key):
    a = jnp.tanh(feats @ w + 0.1 * jax.random.normal(key, (feats.shape[0], A)))
    return a, a.sum(-1)

  h, rng = 4, jax.random.key(9)
  states, acts, aux = jax.jit(lambda s, k: model.apply(
      params, s, policy, h, k, method=RSSM.imagine))(start, rng)
  assert states.deter.shape == (B, h + 1, CFG.deter_dim)
  assert acts.shape == (B, h, A) and aux.shape == (B, h)
  img_step = jax.jit(lambda *a: model.apply(params, *a, method=RSSM.img_step))
  state, want_states, want_acts = start, [start], []
  for key in jax.random.split(rng, h):
    k_act, k_step = jax.random.split(key)
    a, _ = jax.jit(policy)(features(state), k_act)
    state = img_step(state, a, k_step)
    want_states.append(state)
    want_acts.append(a)
  close(states, jax.tree.map(lambda *x: jnp.stack(x, 1), *want_states))
  close(acts, jnp.stack(want_acts, 1))
  np.testing.assert_allclose(aux, acts.sum(-1), atol=1e-6)


def test_initial_state_and_features():
  state = RSSM(CFG).initial(2)
  assert isinstance(state, RSSMState)
  np.testing.assert_array_equal(state.std, 1.0)
  np.testing.assert_array_equal(features(state), np.zeros((2, 12)))


def test_layer_norm_gru_matches_numpy():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(3, 5)).astype(np.float32)
  h = rng.normal(size=(3, 4)).astype(np.float32)
  cell = LayerNormGRUCell(4, update_bias=-1.0)
  params = cell.init(jax.random.key(0), x, h)
  # Non-trivial LayerNorm parameters.
  params = jax.tree.map(lambda p: p + 0.1 * rng.normal(size=p.shape), params)
  p = jax.tree.map(np.asarray, params)['params']
  parts = np.concatenate([x, h], -1) @ p['dense']['kernel']
  mu, var = parts.mean(-1, keepdims=True), parts.var(-1, keepdims=True)
  parts = (parts - mu) / np.sqrt(var + 1e-6) * p['norm']['scale'] + \
      p['norm']['bias']
  sig = lambda z: 1 / (1 + np.exp(-z))
  reset, cand, update = parts[:, :4], parts[:, 4:8], parts[:, 8:]
  cand = np.tanh(sig(reset) * cand)
  update = sig(update - 1.0)
  want = update * cand + (1 - update) * h
  np.testing.assert_allclose(cell.apply(params, x, h), want, rtol=1e-5,
                             atol=1e-5)
