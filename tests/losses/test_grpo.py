"""GRPO losses and advantages against NumPy written from the formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.losses.grpo import group_advantages, grpo_loss


def np_advantages(r, g, scale, eps=1e-4):
  r = np.asarray(r, np.float64)
  out = np.empty_like(r)
  for s in range(0, len(r), g):
    grp = r[s:s + g]
    out[s:s + g] = grp - grp.mean()
    if scale == 'group':
      out[s:s + g] /= np.std(grp, ddof=1) + eps
  if scale == 'batch':
    out /= np.std(r, ddof=1) + eps
  return out


def np_loss(logp, old, ref, adv, mask, lo, hi, beta, kind, lmax):
  b, t = logp.shape
  per = np.zeros((b, t))
  for i in range(b):
    for j in range(t):
      ratio = np.exp(logp[i, j] - old[i, j])
      clipped = min(max(ratio, 1 - lo), 1 + hi)
      per[i, j] = -min(ratio * adv[i], clipped * adv[i])
      if beta:
        d = ref[i, j] - logp[i, j]
        per[i, j] += beta * (np.exp(d) - d - 1)
  if kind == 'grpo':
    return np.mean([(per[i] * mask[i]).sum() / max(mask[i].sum(), 1)
                    for i in range(b)])
  if kind in ('bnpo', 'dapo'):
    return (per * mask).sum() / max(mask.sum(), 1)
  return (per * mask).sum() / (b * lmax)


@pytest.mark.parametrize('scale', ['group', 'batch', 'none'])
def test_advantages_match_numpy(scale):
  r = np.random.default_rng(0).normal(size=12)
  np.testing.assert_allclose(group_advantages(jnp.asarray(r), 4, scale),
                             np_advantages(r, 4, scale), rtol=1e-5, atol=1e-6)


def test_equal_rewards_give_zero_advantage():
  r = jnp.asarray([1., 1., 1., 0., 0., 0.])
  for scale in ('group', 'none'):
    np.testing.assert_array_equal(group_advantages(r, 3, scale), 0.0)


def test_group_size_must_divide():
  with pytest.raises(ValueError, match='groups of 4'):
    group_advantages(jnp.ones(6), 4)


@pytest.mark.parametrize('kind', ['grpo', 'bnpo', 'dr_grpo', 'dapo'])
@pytest.mark.parametrize('beta', [0.0, 0.04])
def test_loss_matches_numpy(kind, beta):
  rng = np.random.default_rng(1)
  b, t = 6, 9
  logp = rng.normal(-1.5, 0.5, (b, t))
  old = logp + rng.normal(0, 0.3, (b, t))  # Ratios inside and outside the clip.
  ref = logp + rng.normal(0, 0.2, (b, t))
  adv = rng.normal(size=b)
  mask = (rng.random((b, t)) > 0.3).astype(np.float64)
  mask[2] = 0.0  # A fully masked row.
  loss, metrics = grpo_loss(
      jnp.asarray(logp), jnp.asarray(old), jnp.asarray(ref), jnp.asarray(adv),
      jnp.asarray(mask), epsilon_low=0.2, epsilon_high=0.28, beta=beta,
      loss_type=kind, max_completion_length=12)
  expected = np_loss(logp, old, ref, adv, mask, 0.2, 0.28, beta, kind, 12)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  assert np.isfinite(float(metrics['clip_ratio/region_mean']))
  assert float(metrics['clip_ratio/region_mean']) > 0


def test_mu_one_ratio_is_exactly_one_and_gradient_is_policy_gradient():
  rng = np.random.default_rng(2)
  logp = jnp.asarray(rng.normal(-1, 0.3, (4, 5)))
  adv = jnp.asarray([1.0, -1.0, 0.5, 0.0])
  mask = jnp.ones((4, 5))
  loss, metrics = grpo_loss(logp, None, None, adv, mask, loss_type='bnpo')
  assert float(metrics['ratio_mean']) == 1.0
  assert float(metrics['clip_ratio/region_mean']) == 0.0
  grad = jax.grad(lambda lp: grpo_loss(lp, None, None, adv, mask,
                                       loss_type='bnpo')[0])(logp)
  # d/dlogp of -(ratio * A) at ratio = 1 is -A / (number of tokens).
  np.testing.assert_allclose(grad, -np.asarray(adv)[:, None] / 20 *
                             np.ones((4, 5)), rtol=1e-6)


def test_beta_zero_needs_no_reference_and_positive_beta_does():
  x = jnp.zeros((2, 3))
  loss, m = grpo_loss(x, x, None, jnp.ones(2), jnp.ones((2, 3)), beta=0.0)
  assert float(m['kl']) == 0.0 and np.isfinite(float(loss))
  with pytest.raises(ValueError, match='ref_logps'):
    grpo_loss(x, x, None, jnp.ones(2), jnp.ones((2, 3)), beta=0.1)


def test_fully_masked_batch_gives_zero_loss():
  x = jnp.ones((2, 3))
  for kind in ('grpo', 'bnpo', 'dapo'):
    loss, _ = grpo_loss(x, x * 0.5, None, jnp.ones(2), jnp.zeros((2, 3)),
                        loss_type=kind)
    assert float(loss) == 0.0
