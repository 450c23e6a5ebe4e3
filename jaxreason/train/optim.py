"""Optax optimizers from an ml_collections config.

  optim = dict(name='adamw', lr=3e-4, schedule='warmup_cosine', warmup_steps=100,
               total_steps=10_000, end_lr_ratio=0.1, b1=0.9, b2=0.95, eps=1e-8,
               weight_decay=0.1, clip_norm=1.0)

Weight decay skips vectors (norm scales, biases), also when stacked over
layers ([L, D] under a `scan_layers` model's 'layers' subtree). A trainable mask (for LoRA
and frozen towers) turns the update of frozen leaves into zeros and keeps no
optimizer state for them; XLA then also drops their gradient computation.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import optax

from jaxreason.models import layout

Schedule = Callable[[Any], Any]


def make_schedule(cfg: Mapping[str, Any]) -> Schedule:
  lr = float(cfg['lr'])
  name = cfg.get('schedule', 'constant')
  warmup = int(cfg.get('warmup_steps', 0))
  if name == 'constant':
    if warmup:
      return optax.join_schedules(
          [optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)],
          [warmup])
    return optax.constant_schedule(lr)
  if name == 'warmup_cosine':
    total = int(cfg['total_steps'])
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup, max(total, warmup + 1),
        end_value=lr * float(cfg.get('end_lr_ratio', 0.0)))
  if name == 'warmup_linear':
    total = int(cfg['total_steps'])
    return optax.join_schedules([
        optax.linear_schedule(0.0, lr, warmup),
        optax.linear_schedule(lr, lr * float(cfg.get('end_lr_ratio', 0.0)),
                              max(total - warmup, 1))], [warmup])
  raise ValueError(f'optim.schedule={name!r}: expected constant, '
                   'warmup_cosine or warmup_linear')


def _decay_mask(params: Any) -> Any:
  """True for matrices; a leaf under a 'layers' key has one more (stacked) axis."""

  def decays(path, p):
    stacked = any(getattr(k, 'key', None) == layout.LAYERS for k in path)
    return p.ndim - stacked >= 2

  return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(cfg: Mapping[str, Any],
                   trainable: Any | None = None
                   ) -> tuple[optax.GradientTransformation, Schedule]:
  """Returns (optimizer, learning-rate schedule).

  `trainable` is an optional pytree of bools with the structure of the params;
  leaves marked False are frozen.
  """
  schedule = make_schedule(cfg)
  name = cfg.get('name', 'adamw')
  chain = []
  if cfg.get('clip_norm'):
    chain.append(optax.clip_by_global_norm(float(cfg['clip_norm'])))
  if name == 'adamw':
    chain.append(optax.adamw(
        schedule, b1=float(cfg.get('b1', 0.9)), b2=float(cfg.get('b2', 0.999)),
        eps=float(cfg.get('eps', 1e-8)),
        weight_decay=float(cfg.get('weight_decay', 0.0)), mask=_decay_mask))
  elif name == 'sgd':
    chain.append(optax.sgd(schedule, momentum=cfg.get('momentum')))
  elif name == 'adafactor':
    chain.append(optax.adafactor(schedule))
  else:
    raise ValueError(f'optim.name={name!r}: expected adamw, sgd or adafactor')
  tx = optax.chain(*chain)
  if trainable is not None:
    labels = jax.tree.map(lambda t: 'train' if t else 'freeze', trainable)
    tx = optax.multi_transform(
        {'train': tx, 'freeze': optax.set_to_zero()}, labels)
  return tx, schedule
