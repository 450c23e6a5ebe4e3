"""Recurrent state-space model (PlaNet / Dreamer RSSM) with Gaussian latents.

  rssm = RSSM(RSSMConfig(deter_dim=200, stoch_dim=30, hidden_dim=200))
  post, prior = rssm.apply(params, embeds, actions, is_first, rng,
                           method=RSSM.observe)            # leaves [B, T, .]
  states, actions, aux = rssm.apply(params, start, policy_fn, 15, rng,
                                    method=RSSM.imagine)   # [B, H + 1, .]

State: `RSSMState(deter [.., D], stoch [.., S], mean [.., S], std [.., S])`,
the deterministic GRU state h_t, a sample s_t and the parameters of the
Gaussian it was drawn from (the prior's or the posterior's). Features for
heads and policies are `features(state) = concat(deter, stoch)` [.., D + S].

One step (DreamerV2 with continuous latents):
  prior     h_t = GRU(Dense(concat(s_{t-1}, a_{t-1})), h_{t-1})
            p(s_t | h_t) = N(mean, softplus(std_raw) + min_std)
  posterior q(s_t | h_t, e_t) from Dense(concat(h_t, e_t)), e_t = enc(o_t).
The GRU is Dreamer's LayerNorm GRU (`LayerNormGRUCell`).

Alignment (DreamerV3's replay format): `actions[:, t]` is the action taken
BEFORE `obs[:, t]`, i.e. a_{t-1}, which led to o_t; zeros (or anything: it is
zeroed) where `is_first[:, t]`. At `is_first` the carried state is replaced by
`initial` (zeros, std 1) and the action by zeros, so sequences holding
several episodes are handled inside one scan.

Randomness is explicit: every step takes a key array; `observe` and
`imagine` split theirs into one key per step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreason.models.world_model.networks import MLP

Array = jax.Array
# policy_fn(features [B, F], rng) -> (action [B, A], aux pytree, leaves [B, ..])
ImaginePolicy = Callable[[Array, Array], tuple[Array, Any]]


class RSSMState(NamedTuple):
  """Latent state; leaves [B, ...] per step or [B, T, ...] as sequences."""
  deter: Array  # [.., deter_dim] h_t
  stoch: Array  # [.., stoch_dim] sample s_t
  mean: Array   # [.., stoch_dim] of the distribution s_t was drawn from
  std: Array    # [.., stoch_dim]


def features(state: RSSMState) -> Array:
  """concat(deter, stoch): [.., deter_dim + stoch_dim]."""
  return jnp.concatenate([state.deter, state.stoch], -1)


@dataclasses.dataclass(frozen=True)
class RSSMConfig:
  """Sizes of the RSSM (DreamerV1/V2 defaults: 200 / 30 / 200)."""
  deter_dim: int = 200
  stoch_dim: int = 30
  hidden_dim: int = 200
  min_std: float = 0.1
  act: str = 'elu'
  layer_norm: bool = True
  gru_update_bias: float = -1.0

  @property
  def feature_dim(self) -> int:
    return self.deter_dim + self.stoch_dim


class LayerNormGRUCell(nn.Module):
  """Dreamer's GRU: one Dense over concat(x, h), LayerNorm, then the gates.

  reset, cand, update = split(LN(W [x, h]))
  h' = u * tanh(sigmoid(reset) * cand) + (1 - u) * h,
  u = sigmoid(update + update_bias)  (bias -1: lean toward keeping h).
  """
  size: int
  update_bias: float = -1.0

  @nn.compact
  def __call__(self, x: Array, h: Array) -> Array:
    parts = nn.Dense(3 * self.size, use_bias=False, name='dense')(
        jnp.concatenate([x, h], -1))
    parts = nn.LayerNorm(name='norm')(parts)
    reset, cand, update = jnp.split(parts, 3, -1)
    reset = jax.nn.sigmoid(reset)
    cand = jnp.tanh(reset * cand)
    update = jax.nn.sigmoid(update + self.update_bias)
    return update * cand + (1.0 - update) * h


class RSSM(nn.Module):
  """The RSSM; see the module docstring for the step and the conventions."""
  config: RSSMConfig

  def setup(self):
    c = self.config
    self.img_in = MLP(c.hidden_dim, 1, act=c.act, layer_norm=c.layer_norm)
    self.gru = LayerNormGRUCell(c.deter_dim, c.gru_update_bias)
    self.img_out = MLP(c.hidden_dim, 1, act=c.act, layer_norm=c.layer_norm)
    self.img_stats = nn.Dense(2 * c.stoch_dim)
    self.obs_out = MLP(c.hidden_dim, 1, act=c.act, layer_norm=c.layer_norm)
    self.obs_stats = nn.Dense(2 * c.stoch_dim)

  def initial(self, batch_size: int) -> RSSMState:
    """The state before the first step: zeros, std 1."""
    c = self.config
    zeros = jnp.zeros((batch_size, c.stoch_dim), jnp.float32)
    return RSSMState(jnp.zeros((batch_size, c.deter_dim), jnp.float32), zeros,
                     zeros, jnp.ones_like(zeros))

  def _dist(self, stats: Array, rng: Array) -> tuple[Array, Array, Array]:
    mean, std = jnp.split(stats, 2, -1)
    std = jax.nn.softplus(std) + self.config.min_std
    stoch = mean + std * jax.random.normal(rng, mean.shape, mean.dtype)
    return stoch, mean, std

  def img_step(self, state: RSSMState, action: Array, rng: Array) -> RSSMState:
    """Prior step: (s_{t-1}, h_{t-1}), a_{t-1} [B, A] -> p(s_t | h_t)."""
    x = self.img_in(jnp.concatenate(
        [state.stoch, action.astype(jnp.float32)], -1))
    deter = self.gru(x, state.deter)
    stoch, mean, std = self._dist(self.img_stats(self.img_out(deter)), rng)
    return RSSMState(deter, stoch, mean, std)

  def reset(self, state: RSSMState, action: Array,
            is_first: Array) -> tuple[RSSMState, Array]:
    """Where is_first [B]: state -> initial, action -> zeros."""
    first = is_first.astype(bool)[:, None]
    init = self.initial(action.shape[0])
    state = jax.tree.map(lambda i, x: jnp.where(first, i, x), init, state)
    return state, jnp.where(first, 0.0, action.astype(jnp.float32))

  def obs_step(self, state: RSSMState, prev_action: Array, embed: Array,
               is_first: Array, rng: Array) -> tuple[RSSMState, RSSMState]:
    """Posterior step.

    Args:
      state: the previous (posterior) state, leaves [B, ...].
      prev_action: [B, A] a_{t-1}, the action that led to o_t.
      embed: [B, E] e_t = enc(o_t).
      is_first: [B] bool; resets state and action first.
      rng: key.

    Returns:
      (post, prior): q(s_t | h_t, e_t) and p(s_t | h_t), sharing deter.
    """
    state, prev_action = self.reset(state, prev_action, is_first)
    k_prior, k_post = jax.random.split(rng)
    prior = self.img_step(state, prev_action, k_prior)
    x = self.obs_out(jnp.concatenate([prior.deter, embed.astype(jnp.float32)],
                                     -1))
    stoch, mean, std = self._dist(self.obs_stats(x), k_post)
    return RSSMState(prior.deter, stoch, mean, std), prior

  def observe(self, embeds: Array, actions: Array, is_first: Array, rng: Array,
              state: RSSMState | None = None) -> tuple[RSSMState, RSSMState]:
    """Filters a sequence: embeds [B, T, E], actions [B, T, A], is_first [B, T].

    `state` (default `initial`) is the state before step 0. Step t uses
    key `jax.random.split(rng, T)[t]`, so `obs_step` called in a Python loop
    with those keys gives the same result.

    Returns:
      (post, prior), RSSMStates with leaves [B, T, ...].
    """
    b, t = embeds.shape[:2]
    if actions.shape[:2] != (b, t) or is_first.shape != (b, t):
      raise ValueError(f'embeds {embeds.shape}, actions {actions.shape}, '
                       f'is_first {is_first.shape}: expected [B, T, ...]')
    if state is None:
      state = self.initial(b)

    def body(mdl, carry, xs):
      embed, action, first, key = xs
      post, prior = mdl.obs_step(carry, action, embed, first, key)
      return post, (post, prior)

    scan = nn.scan(body, variable_broadcast='params',
                   split_rngs={'params': False})
    xs = (jnp.swapaxes(embeds, 0, 1), jnp.swapaxes(actions, 0, 1),
          jnp.swapaxes(is_first, 0, 1), jax.random.split(rng, t))
    _, (post, prior) = scan(self, state, xs)
    return _batch_major(post), _batch_major(prior)

  def imagine(self, start: RSSMState, policy_fn: ImaginePolicy, horizon: int,
              rng: Array) -> tuple[RSSMState, Array, Any]:
    """Rolls the prior forward under `policy_fn` from `start` (leaves [B, ..]).

    Step k: a_k, aux_k = policy_fn(features(s_k), key_a); s_{k+1} =
    img_step(s_k, a_k, key_s), with (key_a, key_s) = split(split(rng,
    horizon)[k]).

    Returns:
      (states [B, H + 1, ..] with states[:, 0] = start, actions [B, H, A],
      aux with leaves [B, H, ...]).
    """

    def body(mdl, carry, key):
      k_act, k_step = jax.random.split(key)
      action, aux = policy_fn(features(carry), k_act)
      nxt = mdl.img_step(carry, action, k_step)
      return nxt, (nxt, action, aux)

    scan = nn.scan(body, variable_broadcast='params',
                   split_rngs={'params': False})
    keys = jax.random.split(rng, horizon)
    _, (states, actions, aux) = scan(self, start, keys)
    states = jax.tree.map(lambda s, x: jnp.concatenate([s[:, None], x], 1),
                          start, _batch_major(states))
    return states, jnp.swapaxes(actions, 0, 1), _batch_major(aux)


def _batch_major(tree: Any) -> Any:
  return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), tree)
