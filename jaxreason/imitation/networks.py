"""Small Flax linen networks for state-based control: actor, twin critic.

The layers are `jaxreason.models.world_model.networks.MLP` (ReLU, no
LayerNorm: `mlp`).

  actor = TanhGaussianActor(action_dim=6)
  params = actor.init(key, obs)['params']                 # obs [B, D]
  action, log_prob = actor_sample(actor.apply, params, obs, rng)  # [B, A], [B]
  critic = DoubleQCritic()
  q1, q2 = critic.apply({'params': cparams}, obs, action)         # [B], [B]

The tanh-Gaussian policy samples u = mean + exp(log_std) * eps, eps ~ N(0, I),
and acts a = tanh(u); its log-density includes the change of variables:
  log pi(a|s) = sum_i [log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2)].
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreason.models.world_model.networks import MLP

Array = jax.Array


def mlp(hidden: Sequence[int], out: int | None = None,
        name: str | None = None) -> MLP:
  """ReLU layers of widths `hidden` (no LayerNorm), then Dense(out) if set."""
  return MLP(tuple(hidden), out=out, act='relu', layer_norm=False, name=name)


def tanh_log_det_jacobian(u: Array) -> Array:
  """log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), elementwise, stable."""
  return 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))


def tanh_gaussian_log_prob(mean: Array, log_std: Array, u: Array) -> Array:
  """log pi(tanh(u)) for pre-tanh sample u: [..., A] -> [...]."""
  z = (u - mean) * jnp.exp(-log_std)
  gauss = -0.5 * z**2 - log_std - 0.5 * math.log(2.0 * math.pi)
  return (gauss - tanh_log_det_jacobian(u)).sum(-1)


def tanh_gaussian_sample(mean: Array, log_std: Array,
                         rng: Array) -> tuple[Array, Array]:
  """Reparameterised sample: (action = tanh(u) [..., A], log_prob [...])."""
  u = mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)
  return jnp.tanh(u), tanh_gaussian_log_prob(mean, log_std, u)


class TanhGaussianActor(nn.Module):
  """obs [..., D] -> (mean, log_std) [..., A] of the pre-tanh Gaussian.

  log_std is squashed softly into [log_std_min, log_std_max] by
  min + (max - min) (tanh(x) + 1) / 2 (as in pytorch_sac / DrQ), which keeps a
  gradient everywhere, unlike a hard clip.
  """

  action_dim: int
  hidden: Sequence[int] = (256, 256)
  log_std_min: float = -5.0
  log_std_max: float = 2.0

  def setup(self):
    self.torso = mlp(self.hidden)
    self.head = nn.Dense(2 * self.action_dim)

  def __call__(self, obs: Array) -> tuple[Array, Array]:
    mean, raw = jnp.split(self.head(self.torso(obs)), 2, axis=-1)
    log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (
        jnp.tanh(raw) + 1.0)
    return mean, log_std

  def sample(self, obs: Array, rng: Array) -> tuple[Array, Array]:
    """(action [..., A] in (-1, 1), log_prob [...]), reparameterised."""
    mean, log_std = self(obs)
    return tanh_gaussian_sample(mean, log_std, rng)

  def mode(self, obs: Array) -> Array:
    """tanh(mean) [..., A]: the deterministic action for evaluation."""
    return jnp.tanh(self(obs)[0])


def actor_sample(apply_fn: Callable[..., Any], params: Any, obs: Array,
                 rng: Array) -> tuple[Array, Array]:
  """`policy_fn(params, obs, rng)` for a TanhGaussianActor.

  Use as functools.partial(actor_sample, actor.apply). `params` is the
  'params' collection (what `init(...)['params']` returns).
  """
  return apply_fn({'params': params}, obs, rng, method='sample')


def actor_mode(apply_fn: Callable[..., Any], params: Any, obs: Array) -> Array:
  """The deterministic action tanh(mean) of a TanhGaussianActor."""
  return apply_fn({'params': params}, obs, method='mode')


class DoubleQCritic(nn.Module):
  """(obs [..., D], action [..., A]) -> (q1, q2), each [...]: two MLPs."""

  hidden: Sequence[int] = (256, 256)

  def setup(self):
    self.q1 = mlp(self.hidden, 1)
    self.q2 = mlp(self.hidden, 1)

  def __call__(self, obs: Array, action: Array) -> tuple[Array, Array]:
    x = jnp.concatenate([obs, action], axis=-1)
    return self.q1(x)[..., 0], self.q2(x)[..., 0]
