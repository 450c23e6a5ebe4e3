"""World-model losses: Gaussian KL, KL balancing, reconstruction, returns.

  terms = elbo_terms(recon_loglik, post, prior)              # each [B, T]
  loss, metrics = elbo_loss(recon_loglik, post, prior, free_nats=1.0,
                            balance=0.8)
  returns = lambda_returns(rewards, values, discounts, lambda_=0.95)  # [B, H]

`post` and `prior` are any objects with `.mean` and `.std` fields holding a
diagonal Gaussian over the last axis, [B, T, S] (an `RSSMState`, or the
`Gaussian` tuple below). All sums over the event axis happen here; all means
over batch and time are mask-weighted means.

Per step t the negative ELBO of a sequence model is
  -log p(o_t | s_t) + KL(q(s_t | h_t, o_t) || p(s_t | h_t)).
Training uses Dreamer's two modifications of the KL term:
  * KL balancing (DreamerV2, Hafner et al. 2021, eq. 2):
      balance * KL(sg(q) || p) + (1 - balance) * KL(q || sg(p)),
    the same value as the KL with the prior (first term) learning faster
    than the posterior; `balance=None` is the plain KL (gradient to both).
    Unlike DreamerV2's code, balance=0.5 is not special-cased: it halves the
    gradient of the plain KL.
  * free nats: max(KL, free_nats). `free_nats_mode='step'` clamps each
    step's KL before averaging (DreamerV3, `free_avg=False` in DreamerV2);
    `'mean'` clamps the batch-and-time mean (DreamerV2 default
    `free_avg=True`). Each balancing term is clamped separately, as in
    DreamerV2.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

_LOG_2PI = 1.8378770664093453  # log(2 * pi)
FREE_NATS_MODES = ('step', 'mean')


class Gaussian(NamedTuple):
  """Diagonal Gaussian over the last axis."""
  mean: Array
  std: Array


def symlog(x: Array) -> Array:
  """sign(x) * log(1 + |x|) (DreamerV3)."""
  return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x: Array) -> Array:
  """Inverse of symlog: sign(x) * (exp(|x|) - 1)."""
  return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def gaussian_kl(mean_q: Array, std_q: Array, mean_p: Array,
                std_p: Array) -> Array:
  """KL(N(mean_q, std_q) || N(mean_p, std_p)) summed over the last axis.

  [..., S] -> [...]. Per dimension:
  log(std_p / std_q) + (std_q^2 + (mean_q - mean_p)^2) / (2 std_p^2) - 1/2.
  """
  var_q, var_p = jnp.square(std_q), jnp.square(std_p)
  kl = (jnp.log(std_p) - jnp.log(std_q)
        + (var_q + jnp.square(mean_q - mean_p)) / (2.0 * var_p) - 0.5)
  return kl.sum(-1)


def _kl(q: Any, p: Any) -> Array:
  return gaussian_kl(q.mean, q.std, p.mean, p.std)


def _sg(d: Any) -> Gaussian:
  return Gaussian(jax.lax.stop_gradient(d.mean), jax.lax.stop_gradient(d.std))


def masked_mean(x: Array, mask: Array | None = None) -> Array:
  """Mean of x, weighted by mask (same shape) when given."""
  x = x.astype(jnp.float32)
  if mask is None:
    return x.mean()
  mask = mask.astype(jnp.float32)
  return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def kl_balanced(post: Any, prior: Any, *, free_nats: float = 1.0,
                balance: float | None = 0.8, free_nats_mode: str = 'step',
                mask: Array | None = None) -> tuple[Array, Array]:
  """DreamerV2 KL balancing with free nats (see the module docstring).

  Args:
    post: q, `.mean` / `.std` [B, T, S].
    prior: p, same shapes.
    free_nats: lower clamp of each KL term (0 disables).
    balance: weight of KL(sg(q) || p), the term that trains the prior; None
      gives the plain KL(q || p) with gradient to both.
    free_nats_mode: 'step' (clamp per step, then mean) or 'mean' (clamp the
      mean).
    mask: optional [B, T] weights of the steps.

  Returns:
    (loss, kl): the scalar KL loss and the unclamped KL(q || p) per step
    [B, T].
  """
  if free_nats_mode not in FREE_NATS_MODES:
    raise ValueError(f'free_nats_mode={free_nats_mode!r}: expected one of '
                     f'{FREE_NATS_MODES}')

  def clamped_mean(kl):
    if free_nats_mode == 'step':
      return masked_mean(jnp.maximum(kl, free_nats), mask)
    return jnp.maximum(masked_mean(kl, mask), free_nats)

  kl = _kl(post, prior)
  if balance is None:
    return clamped_mean(kl), kl
  lhs = _kl(_sg(post), prior)  # trains the prior
  rhs = _kl(post, _sg(prior))  # trains the posterior
  loss = balance * clamped_mean(lhs) + (1.0 - balance) * clamped_mean(rhs)
  return loss, kl


def gaussian_log_likelihood(mean: Array, target: Array,
                            std: float | Array = 1.0,
                            event_ndims: int = 1) -> Array:
  """log N(target; mean, std^2) summed over the last `event_ndims` axes."""
  z = (target.astype(jnp.float32) - mean) / std
  logp = -0.5 * jnp.square(z) - jnp.log(std) - 0.5 * _LOG_2PI
  logp = jnp.broadcast_to(logp, jnp.broadcast_shapes(mean.shape, target.shape))
  return logp.sum(tuple(range(-event_ndims, 0))) if event_ndims else logp


def symlog_mse_log_likelihood(pred: Array, target: Array,
                              event_ndims: int = 1) -> Array:
  """-sum (pred - symlog(target))^2 (DreamerV3's SymlogDist, no 1/2 factor).

  `pred` lives in symlog space; the 'log-likelihood' is up to a constant
  that of a Gaussian with std 1/sqrt(2) in symlog space.
  """
  d = -jnp.square(pred - symlog(target.astype(jnp.float32)))
  return d.sum(tuple(range(-event_ndims, 0))) if event_ndims else d


def elbo_terms(recon_loglik: Array, post: Any, prior: Any) -> dict[str, Array]:
  """Per-step negative-ELBO terms, all [B, T].

  recon = -log p(o_t | s_t), kl = KL(q_t || p_t), total = recon + kl (the
  negative ELBO of step t, without free nats or balancing).
  """
  kl = _kl(post, prior)
  if kl.shape != recon_loglik.shape:
    raise ValueError(f'KL {kl.shape} and recon_loglik {recon_loglik.shape} '
                     'must be the same [B, T]')
  recon = -recon_loglik
  return {'recon': recon, 'kl': kl, 'total': recon + kl}


def elbo_loss(recon_loglik: Array, post: Any, prior: Any, *,
              free_nats: float = 1.0, balance: float | None = 0.8,
              kl_scale: float = 1.0, free_nats_mode: str = 'step',
              mask: Array | None = None) -> tuple[Array, dict[str, Array]]:
  """Negative ELBO as trained: mean recon + kl_scale * balanced, clamped KL.

  Args:
    recon_loglik: [B, T] log p(o_t | s_t) (summed over the observation).
    post, prior: Gaussians with `.mean` / `.std` [B, T, S].
    free_nats, balance, free_nats_mode: see `kl_balanced`.
    kl_scale: weight of the KL loss (beta).
    mask: optional [B, T] step weights.

  Returns:
    (loss, metrics) with scalar metrics: recon (mean -log p), kl (mean
    unclamped KL), kl_loss (balanced, clamped), elbo (mean per-step ELBO,
    = -(recon + kl)), loss. Per-step values: `elbo_terms`.
  """
  kl_loss, kl = kl_balanced(post, prior, free_nats=free_nats, balance=balance,
                            free_nats_mode=free_nats_mode, mask=mask)
  recon = masked_mean(-recon_loglik, mask)
  kl_mean = masked_mean(kl, mask)
  loss = recon + kl_scale * kl_loss
  metrics = {'recon': recon, 'kl': kl_mean, 'kl_loss': kl_loss,
             'elbo': -(recon + kl_mean), 'loss': loss}
  return loss, metrics


def lambda_returns(rewards: Array, values: Array, discounts: Array,
                   lambda_: float = 0.95) -> Array:
  """TD(lambda) returns of an imagined trajectory (Dreamer).

  R_t = r_t + gamma_t * ((1 - lambda) v_{t+1} + lambda R_{t+1}), R_H = v_H.

  Args:
    rewards: [B, H], r_t received on the transition from s_t to s_{t+1}.
    values: [B, H + 1], v(s_0) ... v(s_H).
    discounts: [B, H], gamma_t (discount times continuation).
    lambda_: the TD(lambda) mixing.

  Returns:
    [B, H]: R_0 ... R_{H-1}.
  """
  b, h = rewards.shape
  if values.shape != (b, h + 1) or discounts.shape != (b, h):
    raise ValueError(f'rewards {rewards.shape}, values {values.shape}, '
                     f'discounts {discounts.shape}: expected [B, H], '
                     '[B, H + 1], [B, H]')

  def step(next_return, xs):
    r, v_next, g = xs
    ret = r + g * ((1.0 - lambda_) * v_next + lambda_ * next_return)
    return ret, ret

  xs = (rewards.T, values[:, 1:].T, discounts.T)  # time-major [H, B]
  _, returns = jax.lax.scan(step, values[:, -1], xs, reverse=True)
  return returns.T
