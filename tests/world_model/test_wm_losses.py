"""World-model losses against NumPy written from the formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxreason.losses import world_model as L


def np_kl(mq, sq, mp, sp):
  """KL of diagonal Gaussians, summed over the last axis (textbook formula)."""
  return (np.log(sp / sq) + (sq**2 + (mq - mp)**2) / (2 * sp**2) - 0.5).sum(-1)


def rand_gaussians(seed, shape=(2, 3, 4)):
  rng = np.random.default_rng(seed)
  mq, mp = rng.normal(size=shape), rng.normal(size=shape)
  sq, sp = rng.uniform(0.3, 2.0, shape), rng.uniform(0.3, 2.0, shape)
  return [x.astype(np.float32) for x in (mq, sq, mp, sp)]


def test_gaussian_kl_matches_numpy_and_is_zero_for_equal():
  mq, sq, mp, sp = rand_gaussians(0)
  np.testing.assert_allclose(L.gaussian_kl(mq, sq, mp, sp),
                             np_kl(mq, sq, mp, sp), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(L.gaussian_kl(mq, sq, mq, sq), 0.0, atol=1e-6)
  # One dimension, by hand: KL(N(1, 1) || N(0, 2^2)) = log 2 + 2/8 - 1/2.
  kl = L.gaussian_kl(jnp.ones((1,)), jnp.ones((1,)), jnp.zeros((1,)),
                     2 * jnp.ones((1,)))
  assert float(kl) == pytest.approx(np.log(2) + 0.25 - 0.5, rel=1e-6)


@pytest.mark.parametrize('mode', ['step', 'mean'])
def test_kl_balanced_value_and_free_nats(mode):
  mq, sq, mp, sp = rand_gaussians(1)
  post, prior = L.Gaussian(mq, sq), L.Gaussian(mp, sp)
  kl = np_kl(mq, sq, mp, sp)  # [2, 3]
  free = float(np.median(kl))  # clamps some steps, not all
  if mode == 'step':
    want = np.maximum(kl, free).mean()
  else:
    want = max(kl.mean(), free)
  for balance in (None, 0.8):
    loss, kl_out = L.kl_balanced(post, prior, free_nats=free, balance=balance,
                                 free_nats_mode=mode)
    assert float(loss) == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(kl_out, kl, rtol=1e-5)
  # The mean of the clamped KL differs from the clamp of the mean here.
  assert np.maximum(kl, free).mean() != pytest.approx(max(kl.mean(), free))


def test_kl_balanced_mask_and_large_free_nats():
  mq, sq, mp, sp = rand_gaussians(2)
  mask = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
  kl = np_kl(mq, sq, mp, sp)
  loss, _ = L.kl_balanced(L.Gaussian(mq, sq), L.Gaussian(mp, sp),
                          free_nats=0.0, balance=0.8, mask=mask)
  assert float(loss) == pytest.approx((kl * mask).sum() / mask.sum(), rel=1e-5)
  loss, _ = L.kl_balanced(L.Gaussian(mq, sq), L.Gaussian(mp, sp),
                          free_nats=1e3, balance=0.8)
  assert float(loss) == pytest.approx(1e3)


def test_kl_balancing_splits_the_gradient():
  """d/d prior = balance dKL/d prior; d/d post = (1 - balance) dKL/d post."""
  mq, sq, mp, sp = rand_gaussians(3, (1, 1, 3))
  balance = 0.8

  def loss(means, bal):
    return L.kl_balanced(L.Gaussian(means[0], sq), L.Gaussian(means[1], sp),
                         free_nats=0.0, balance=bal)[0]

  g_post, g_prior = jax.grad(loss)((mq, mp), balance)
  # dKL/dmean_q = (mq - mp) / sp^2 = -dKL/dmean_p (one step: the mean is it).
  d = (mq - mp) / sp**2
  np.testing.assert_allclose(g_post, (1 - balance) * d, rtol=1e-5)
  np.testing.assert_allclose(g_prior, -balance * d, rtol=1e-5)
  g_post, g_prior = jax.grad(loss)((mq, mp), None)
  np.testing.assert_allclose(g_post, d, rtol=1e-5)
  np.testing.assert_allclose(g_prior, -d, rtol=1e-5)


def test_gaussian_log_likelihood_matches_scipy():
  rng = np.random.default_rng(4)
  mean, x = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 5))
  want = stats.norm.logpdf(x, mean, 0.7).sum(-1)
  got = L.gaussian_log_likelihood(jnp.asarray(mean, jnp.float32),
                                  jnp.asarray(x, jnp.float32), 0.7)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  img = rng.normal(size=(2, 4, 4, 3))
  got = L.gaussian_log_likelihood(jnp.zeros((2, 4, 4, 3)), jnp.asarray(img),
                                  event_ndims=3)
  np.testing.assert_allclose(got, stats.norm.logpdf(img).sum((1, 2, 3)),
                             rtol=1e-5)


def test_symlog_symexp_and_symlog_mse():
  x = np.array([-100.0, -1.0, 0.0, 0.5, 1e3], np.float32)
  np.testing.assert_allclose(L.symlog(x), np.sign(x) * np.log(1 + np.abs(x)),
                             rtol=1e-6)
  np.testing.assert_allclose(L.symexp(L.symlog(x)), x, rtol=1e-5)
  pred = np.array([[0.1, -0.2, 3.0]], np.float32)
  want = -((pred - np.sign(x[2:]) * np.log1p(np.abs(x[2:])))**2).sum(-1)
  np.testing.assert_allclose(L.symlog_mse_log_likelihood(pred, x[None, 2:]),
                             want, rtol=1e-5)


def test_elbo_terms_and_loss_match_numpy():
  mq, sq, mp, sp = rand_gaussians(5)
  loglik = np.random.default_rng(6).normal(-5, 2, (2, 3)).astype(np.float32)
  post, prior = L.Gaussian(mq, sq), L.Gaussian(mp, sp)
  kl = np_kl(mq, sq, mp, sp)
  terms = L.elbo_terms(loglik, post, prior)
  np.testing.assert_allclose(terms['recon'], -loglik)
  np.testing.assert_allclose(terms['kl'], kl, rtol=1e-5)
  np.testing.assert_allclose(terms['total'], kl - loglik, rtol=1e-5)
  loss, m = L.elbo_loss(loglik, post, prior, free_nats=0.5, balance=0.8,
                        kl_scale=0.3)
  want = -loglik.mean() + 0.3 * np.maximum(kl, 0.5).mean()
  assert float(loss) == pytest.approx(want, rel=1e-5)
  assert float(m['recon']) == pytest.approx(-loglik.mean(), rel=1e-5)
  assert float(m['kl']) == pytest.approx(kl.mean(), rel=1e-5)
  assert float(m['elbo']) == pytest.approx((loglik - kl).mean(), rel=1e-5)


def test_lambda_returns_by_hand():
  # R_2 = 3 + .9 * 2 = 4.8; R_1 = 2 + .9 (.2 * 1.5 + .8 * 4.8) = 5.726;
  # R_0 = 1 + .9 (.2 * 1 + .8 * 5.726) = 5.30272.
  r = jnp.array([[1.0, 2.0, 3.0]])
  v = jnp.array([[0.5, 1.0, 1.5, 2.0]])
  g = jnp.full((1, 3), 0.9)
  np.testing.assert_allclose(L.lambda_returns(r, v, g, 0.8),
                             [[5.30272, 5.726, 4.8]], rtol=1e-6)
  # lambda = 0: one-step TD targets; lambda = 1: discounted sum + bootstrap.
  np.testing.assert_allclose(L.lambda_returns(r, v, g, 0.0),
                             [[1 + .9 * 1.0, 2 + .9 * 1.5, 3 + .9 * 2.0]],
                             rtol=1e-6)
  mc0 = 1 + .9 * 2 + .81 * 3 + .729 * 2.0
  assert float(L.lambda_returns(r, v, g, 1.0)[0, 0]) == pytest.approx(mc0)


def test_lambda_returns_matches_numpy_loop():
  rng = np.random.default_rng(7)
  b, h, lam = 4, 6, 0.95
  r = rng.normal(size=(b, h)).astype(np.float32)
  v = rng.normal(size=(b, h + 1)).astype(np.float32)
  g = rng.uniform(0.5, 1.0, (b, h)).astype(np.float32)
  want = np.zeros((b, h))
  nxt = v[:, h]
  for t in reversed(range(h)):
    nxt = r[:, t] + g[:, t] * ((1 - lam) * v[:, t + 1] + lam * nxt)
    want[:, t] = nxt
  np.testing.assert_allclose(jax.jit(L.lambda_returns)(r, v, g, lam), want,
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError):
    L.lambda_returns(r, v[:, :-1], g)
