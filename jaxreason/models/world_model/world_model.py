"""The world model: encoder + RSSM + decoder (+ reward head), and its loss.

  model = WorldModel(WorldModelConfig(obs_kind='state', obs_dim=24,
                                      action_dim=6, reward_head=True))
  params = model.init(key, obs, actions, is_first, rng)   # all parameters
  out = model.apply(params, obs, actions, is_first, rng)  # see __call__
  loss_fn = make_world_model_loss(model, free_nats=1.0, kl_balance=0.8)
  loss, metrics = loss_fn(params, batch, rng)             # train_step-ready

Batches are batch-major sequences (DreamerV3's replay format):
  obs [B, T, D] (state) or [B, T, 64, 64, 3] (pixels, uint8 in [0, 255] or
  float already in [-0.5, 0.5]); action [B, T, A] with action[:, t] the
  action taken BEFORE obs[:, t] (zeros at episode starts); is_first [B, T]
  bool; reward [B, T] the reward that came with obs[:, t] (reward head only).

An `action_free` model (AIME-v2's model of the expert's observations, trained
on demonstrations without actions) drops the action input: any action given
is sliced to width 0, and None is accepted wherever an action is.

`WorldModelFns` exposes a model as pure functions of (params, ...), the
interface the imitation losses (`jaxreason.imitation.aime`) are written
against; `world_model_fns(model)` builds it for a `WorldModel`, and a test
can build one by hand for a known linear-Gaussian system.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreason.losses import world_model as wm_losses
from jaxreason.models.world_model import networks
from jaxreason.models.world_model.rssm import (RSSM, ImaginePolicy, RSSMConfig,
                                               RSSMState, features)

Array = jax.Array
OBS_KINDS = ('state', 'pixels')
RECON_KINDS = ('gaussian', 'symlog_mse')


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
  """Sizes and options of a `WorldModel`.

  Attributes:
    obs_kind: 'state' (vectors [.., obs_dim], MLP encoder/decoder) or
      'pixels' ([.., 64, 64, 3], DreamerV1/V2 conv encoder/decoder).
    obs_dim: size of a state observation (ignored for pixels).
    action_dim: A (ignored when action_free).
    rssm: an RSSMConfig, or a dict of its fields (from ml_collections).
    embed_dim: output size of the MLP encoder (pixels: 32 * cnn_depth).
    mlp_hidden, mlp_layers: MLP encoder/decoder.
    cnn_depth: conv encoder/decoder depth multiplier (32 in Dreamer).
    act: activation of the MLPs.
    recon: 'gaussian' (unit-std Gaussian log-likelihood, summed) or
      'symlog_mse' (DreamerV3; state observations only).
    symlog_inputs: symlog state observations before the MLP encoder.
    action_free: ignore actions (see the module docstring).
    reward_head: add a scalar reward head on the features.
    head_hidden, head_layers: the reward head's MLP.
  """
  obs_kind: str = 'state'
  obs_dim: int = 0
  action_dim: int = 0
  rssm: RSSMConfig = dataclasses.field(default_factory=RSSMConfig)
  embed_dim: int = 256
  mlp_hidden: int = 256
  mlp_layers: int = 2
  cnn_depth: int = 32
  act: str = 'elu'
  recon: str = 'gaussian'
  symlog_inputs: bool = False
  action_free: bool = False
  reward_head: bool = False
  head_hidden: int = 256
  head_layers: int = 2

  def __post_init__(self):
    if isinstance(self.rssm, dict) or hasattr(self.rssm, 'to_dict'):
      rssm = self.rssm.to_dict() if hasattr(self.rssm, 'to_dict') else self.rssm
      object.__setattr__(self, 'rssm', RSSMConfig(**rssm))
    if self.obs_kind not in OBS_KINDS:
      raise ValueError(f'obs_kind={self.obs_kind!r}: expected one of '
                       f'{OBS_KINDS}')
    if self.recon not in RECON_KINDS:
      raise ValueError(f'recon={self.recon!r}: expected one of {RECON_KINDS}')
    if self.obs_kind == 'state' and self.obs_dim <= 0:
      raise ValueError('obs_kind=state needs obs_dim > 0')
    if self.obs_kind == 'pixels' and self.recon != 'gaussian':
      raise ValueError('pixels use recon=gaussian')

  @property
  def feature_dim(self) -> int:
    return self.rssm.feature_dim

  @property
  def obs_event_ndims(self) -> int:
    return 1 if self.obs_kind == 'state' else 3


class WorldModel(nn.Module):
  """Encoder, RSSM, decoder and optional reward head (see module docstring)."""
  config: WorldModelConfig

  def setup(self):
    c = self.config
    if c.obs_kind == 'state':
      self.encoder = networks.MLPEncoder(c.mlp_hidden, c.mlp_layers,
                                         c.embed_dim, c.act, c.symlog_inputs)
      self.decoder = networks.MLPDecoder(c.mlp_hidden, c.mlp_layers,
                                         c.obs_dim, c.act)
    else:
      self.encoder = networks.ConvEncoder(c.cnn_depth)
      self.decoder = networks.ConvDecoder(c.cnn_depth)
    self.rssm = RSSM(c.rssm)
    if c.reward_head:
      self.reward_net = networks.ScalarHead(c.head_hidden, c.head_layers, c.act)

  # -- inputs -----------------------------------------------------------------

  def preprocess(self, obs: Array) -> Array:
    """float32 observations; integer pixels map to x / 255 - 0.5."""
    if self.config.obs_kind == 'pixels' and jnp.issubdtype(obs.dtype,
                                                           jnp.integer):
      return obs.astype(jnp.float32) / 255.0 - 0.5
    return obs.astype(jnp.float32)

  def _action(self, action: Array | None, lead: tuple[int, ...]) -> Array:
    c = self.config
    if c.action_free:
      return jnp.zeros(lead + (0,), jnp.float32)
    if action is None or action.shape != lead + (c.action_dim,):
      raise ValueError(f'action {None if action is None else action.shape}: '
                       f'expected {lead + (c.action_dim,)}')
    return action.astype(jnp.float32)

  # -- latent dynamics --------------------------------------------------------

  def encode(self, obs: Array) -> Array:
    """obs [.., D] or [.., 64, 64, 3] -> embeddings [.., E]."""
    return self.encoder(self.preprocess(obs))

  def initial(self, batch_size: int) -> RSSMState:
    return self.rssm.initial(batch_size)

  def img_step(self, state: RSSMState, action: Array | None,
               rng: Array) -> RSSMState:
    """Prior step from state (leaves [B, ..]) with action [B, A]."""
    action = self._action(action, state.deter.shape[:1])
    return self.rssm.img_step(state, action, rng)

  def obs_step(self, state: RSSMState, prev_action: Array | None,
               embed: Array, is_first: Array,
               rng: Array) -> tuple[RSSMState, RSSMState]:
    """Posterior step on an embedding [B, E]; see `RSSM.obs_step`."""
    action = self._action(prev_action, embed.shape[:1])
    return self.rssm.obs_step(state, action, embed, is_first, rng)

  def observe(self, obs: Array, actions: Array | None, is_first: Array,
              rng: Array, state: RSSMState | None = None
              ) -> tuple[RSSMState, RSSMState]:
    """obs [B, T, ..], actions [B, T, A] -> (post, prior), leaves [B, T, ..]."""
    embeds = self.encode(obs)
    actions = self._action(actions, embeds.shape[:2])
    return self.rssm.observe(embeds, actions, is_first, rng, state)

  def imagine(self, start: RSSMState, policy_fn: ImaginePolicy, horizon: int,
              rng: Array) -> tuple[RSSMState, Array, Any]:
    """See `RSSM.imagine`; policy_fn(features [B, F], rng) -> (action, aux)."""

    def policy(feats, key):  # checks the width; action-free: width 0
      action, aux = policy_fn(feats, key)
      return self._action(action, feats.shape[:1]), aux

    return self.rssm.imagine(start, policy, horizon, rng)

  # -- heads ------------------------------------------------------------------

  def decode(self, feats: Array) -> Array:
    """features [.., F] -> the observation's mean, in observation space."""
    out = self.decoder(feats)
    return wm_losses.symexp(out) if self.config.recon == 'symlog_mse' else out

  def log_likelihood(self, feats: Array, obs: Array) -> Array:
    """log p(obs | features): [..] (summed over the observation's axes)."""
    target = self.preprocess(obs)
    out = self.decoder(feats)
    n = self.config.obs_event_ndims
    if self.config.recon == 'symlog_mse':
      return wm_losses.symlog_mse_log_likelihood(out, target, n)
    return wm_losses.gaussian_log_likelihood(out, target, 1.0, n)

  def reward(self, feats: Array) -> Array:
    """features [.., F] -> predicted reward [..]."""
    if not self.config.reward_head:
      raise ValueError('this WorldModel has reward_head=False')
    return self.reward_net(feats)

  def __call__(self, obs: Array, actions: Array | None, is_first: Array,
               rng: Array) -> dict[str, Any]:
    """Filters a batch and evaluates the heads on the posterior (and inits).

    Returns:
      dict: post, prior (RSSMStates [B, T, ..]), features [B, T, F],
      recon_loglik [B, T], and reward [B, T] if the model has a reward head.
    """
    post, prior = self.observe(obs, actions, is_first, rng)
    feats = features(post)
    out = {'post': post, 'prior': prior, 'features': feats,
           'recon_loglik': self.log_likelihood(feats, obs)}
    if self.config.reward_head:
      out['reward'] = self.reward(feats)
    return out


def world_model_loss(model: WorldModel, params: Any, batch: dict[str, Array],
                     rng: Array, *, free_nats: float = 1.0,
                     kl_balance: float | None = 0.8, kl_scale: float = 1.0,
                     free_nats_mode: str = 'step', reward_scale: float = 1.0
                     ) -> tuple[Array, dict[str, Array]]:
  """Negative ELBO (+ reward regression) of a batch; see `elbo_loss`.

  batch: obs, action (may be absent for action-free models), is_first,
  optional reward [B, T] (trained when the model has a reward head, with
  0.5 * squared error, gradients reaching the representation as in Dreamer)
  and optional mask [B, T].
  """
  out = model.apply(params, batch['obs'], batch.get('action'),
                    batch['is_first'], rng)
  mask = batch.get('mask')
  loss, metrics = wm_losses.elbo_loss(
      out['recon_loglik'], out['post'], out['prior'], free_nats=free_nats,
      balance=kl_balance, kl_scale=kl_scale, free_nats_mode=free_nats_mode,
      mask=mask)
  if model.config.reward_head and 'reward' in batch:
    err = 0.5 * jnp.square(out['reward'] - batch['reward'].astype(jnp.float32))
    reward_loss = wm_losses.masked_mean(err, mask)
    loss = loss + reward_scale * reward_loss
    metrics = dict(metrics, reward_loss=reward_loss, loss=loss)
  return loss, metrics


def make_world_model_loss(model: WorldModel, **kwargs
                          ) -> Callable[..., tuple[Array, dict[str, Array]]]:
  """`loss_fn(params, batch, rng, frozen=None)` for `make_train_step`."""

  def loss_fn(params, batch, rng, frozen=None):
    del frozen
    return world_model_loss(model, params, batch, rng, **kwargs)

  return loss_fn


class WorldModelFns(NamedTuple):
  """A world model as pure functions of explicit parameters.

  Shapes: states are `RSSMState`s with leaves [B, ..]; obs [B, T, ..].
    encode(params, obs [B, T, ..]) -> embed [B, T, E]
    initial(params, batch_size) -> state
    obs_step(params, state, prev_action [B, A] | None, embed [B, E],
             is_first [B], rng) -> (post, prior)
    img_step(params, state, action [B, A] | None, rng) -> prior
    log_likelihood(params, features [.., F], obs [.., obs]) -> [..]
    features(state) -> [.., F]
    reward(params, features [.., F]) -> [..]  (None when there is no head)
  """
  encode: Callable[..., Array]
  initial: Callable[..., RSSMState]
  obs_step: Callable[..., tuple[RSSMState, RSSMState]]
  img_step: Callable[..., RSSMState]
  log_likelihood: Callable[..., Array]
  features: Callable[[RSSMState], Array] = features
  reward: Callable[..., Array] | None = None


def world_model_fns(model: WorldModel) -> WorldModelFns:
  """`WorldModelFns` of a linen `WorldModel` (each one `model.apply`)."""

  def method(fn):
    return lambda params, *args: model.apply(params, *args, method=fn)

  return WorldModelFns(
      encode=method(WorldModel.encode),
      initial=method(WorldModel.initial),
      obs_step=method(WorldModel.obs_step),
      img_step=method(WorldModel.img_step),
      log_likelihood=method(WorldModel.log_likelihood),
      features=features,
      reward=method(WorldModel.reward) if model.config.reward_head else None)
