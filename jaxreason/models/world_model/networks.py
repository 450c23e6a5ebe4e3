"""Encoders, decoders and scalar heads of the world model (linen).

All modules take arbitrary leading dimensions ([B, T, ...] or [N, ...]).

* `MLP`: Dense -> [LayerNorm] -> activation per hidden layer, optional
  output (also the actor, critic and BC networks of `jaxreason.imitation`).
* `MLPEncoder` / `MLPDecoder`: state-vector observations [..., D].
* `ConvEncoder` / `ConvDecoder`: 64x64x3 pixels, DreamerV1/V2 sizes: four
  4x4 stride-2 VALID convolutions of depth (1, 2, 4, 8) * depth
  (64 -> 31 -> 14 -> 6 -> 2, embedding 32 * depth = 1024 for depth 32); the
  decoder maps features to a 1x1x(32 * depth) map and four transposed
  convolutions (kernels 5, 5, 6, 6, stride 2, VALID: 1 -> 5 -> 13 -> 30 ->
  64) back to 64x64x3.
* `ScalarHead`: MLP -> one scalar per leading index (reward, value,
  discriminator logit).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def activation(name: str):
  """A linen activation by name ('elu', 'silu', 'relu', 'tanh', ...)."""
  fn = getattr(nn, name, None)
  if fn is None or not callable(fn):
    raise ValueError(f'unknown activation {name!r}')
  return fn


class MLP(nn.Module):
  """Per hidden layer Dense -> [LayerNorm] -> act, then Dense(out) if set.

  `hidden` is one width used `layers` times, or the widths of the layers
  (then `layers` is None or their number).
  """
  hidden: int | Sequence[int]
  layers: int | None = None
  out: int | None = None
  act: str = 'elu'
  layer_norm: bool = True

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if isinstance(self.hidden, int):
      if self.layers is None:
        raise ValueError('MLP(hidden=int) needs layers')
      sizes = (self.hidden,) * self.layers
    else:
      sizes = tuple(self.hidden)
      if self.layers is not None and self.layers != len(sizes):
        raise ValueError(f'MLP: layers={self.layers} but hidden={sizes}')
    x = x.astype(jnp.float32)
    for i, size in enumerate(sizes):
      x = nn.Dense(size, name=f'dense{i}')(x)
      if self.layer_norm:
        x = nn.LayerNorm(name=f'norm{i}')(x)
      x = activation(self.act)(x)
    if self.out is not None:
      x = nn.Dense(self.out, name='out')(x)
    return x


class MLPEncoder(nn.Module):
  """[..., D] -> [..., embed_dim]; symlog of the inputs first if asked."""
  hidden: int
  layers: int
  embed_dim: int
  act: str = 'elu'
  symlog_inputs: bool = False

  @nn.compact
  def __call__(self, obs: Array) -> Array:
    x = obs.astype(jnp.float32)
    if self.symlog_inputs:
      x = jnp.sign(x) * jnp.log1p(jnp.abs(x))
    return MLP(self.hidden, self.layers, self.embed_dim, self.act)(x)


class MLPDecoder(nn.Module):
  """[..., F] -> [..., out_dim] (the mean of the observation)."""
  hidden: int
  layers: int
  out_dim: int
  act: str = 'elu'

  @nn.compact
  def __call__(self, features: Array) -> Array:
    return MLP(self.hidden, self.layers, self.out_dim, self.act)(features)


class ConvEncoder(nn.Module):
  """[..., 64, 64, C] (float, e.g. in [-0.5, 0.5]) -> [..., 32 * depth]."""
  depth: int = 32
  act: str = 'relu'
  kernel: int = 4
  mults: Sequence[int] = (1, 2, 4, 8)

  @nn.compact
  def __call__(self, obs: Array) -> Array:
    lead = obs.shape[:-3]
    x = obs.reshape((-1,) + obs.shape[-3:]).astype(jnp.float32)
    for i, m in enumerate(self.mults):
      x = nn.Conv(m * self.depth, (self.kernel, self.kernel), strides=(2, 2),
                  padding='VALID', name=f'conv{i}')(x)
      x = activation(self.act)(x)
    return x.reshape(lead + (-1,))


class ConvDecoder(nn.Module):
  """[..., F] -> [..., 64, 64, channels] (the mean of the image)."""
  depth: int = 32
  channels: int = 3
  act: str = 'relu'

  @nn.compact
  def __call__(self, features: Array) -> Array:
    lead = features.shape[:-1]
    x = nn.Dense(32 * self.depth, name='project')(
        features.reshape(-1, features.shape[-1]).astype(jnp.float32))
    x = x[:, None, None, :]  # [N, 1, 1, 32 * depth]
    specs = ((4 * self.depth, 5), (2 * self.depth, 5), (self.depth, 6),
             (self.channels, 6))
    for i, (feat, k) in enumerate(specs):
      x = nn.ConvTranspose(feat, (k, k), strides=(2, 2), padding='VALID',
                           name=f'deconv{i}')(x)
      if i < len(specs) - 1:
        x = activation(self.act)(x)
    return x.reshape(lead + x.shape[1:])


class ScalarHead(nn.Module):
  """[..., F] -> [...]: an MLP with a single output, squeezed."""
  hidden: int
  layers: int
  act: str = 'elu'

  @nn.compact
  def __call__(self, features: Array) -> Array:
    return MLP(self.hidden, self.layers, 1, self.act)(features)[..., 0]
