"""Logical axis names -> mesh axes.

Models annotate every parameter and main activation with *logical* axis names
(``embed``, ``mlp``, ``heads`` ...). This file is the only place (besides
configs) that knows the mesh axes ``data``, ``fsdp`` and ``tensor``.

* Parameters are sharded over ``fsdp`` on their model dimension and over
  ``tensor`` on heads / mlp / vocab (Megatron-style tensor parallelism).
* Activations are sharded over ``data`` and ``fsdp`` on the batch dimension.

A dimension whose size is not divisible by the mesh axes it maps to is left
replicated (logged once), so a tiny test model or a model with 2 KV heads on a
4-way tensor mesh still runs, just with less sharding.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any, Iterator, Sequence

from absl import logging
import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

LogicalRules = Sequence[tuple[str, str | tuple[str, ...] | None]]

DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    # Parameters.
    ('vocab', 'tensor'),
    ('embed', 'fsdp'),
    ('mlp', 'tensor'),
    ('heads', 'tensor'),
    ('kv_heads', 'tensor'),
    ('head_dim', None),
    ('norm', None),
    # The stacked-layers axis of `scan_layers` params: not sharded (every
    # device holds its shard of every layer; the scan slices one per step).
    ('layers', None),
    # Activations.
    ('act_batch', ('data', 'fsdp')),
    ('act_length', None),
    ('act_embed', None),
    ('act_heads', 'tensor'),
    ('act_kv_heads', 'tensor'),
    ('act_mlp', 'tensor'),
    ('act_vocab', 'tensor'),
    ('cache_length', None),
)


def rules_from_config(overrides: Sequence[Sequence[Any]] | None) -> LogicalRules:
  """DEFAULT_RULES with per-name overrides from a config (a list of pairs)."""
  rules = dict(DEFAULT_RULES)
  for name, axes in overrides or ():
    if isinstance(axes, list):
      axes = tuple(axes)
    rules[name] = axes
  return tuple(rules.items())


def _mesh_axes_for(name: str | None, rules: LogicalRules):
  if name is None:
    return None
  for logical, mesh_axes in rules:
    if logical == name:
      return mesh_axes
  raise ValueError(
      f'Logical axis {name!r} has no sharding rule; known: '
      f'{[r[0] for r in rules]}'
  )


_warned: set[tuple[Any, ...]] = set()


def logical_to_spec(
    logical_axes: Sequence[str | None],
    shape: Sequence[int],
    mesh: Mesh,
    rules: LogicalRules = DEFAULT_RULES,
) -> P:
  """PartitionSpec for an array of `shape` with the given logical axes.

  Mesh axes of size 1 are dropped and a mesh axis is used at most once. A
  dimension not divisible by its mesh axes stays replicated.
  """
  if len(logical_axes) != len(shape):
    raise ValueError(
        f'Logical axes {tuple(logical_axes)} do not match shape {tuple(shape)}'
    )
  used: set[str] = set()
  spec = []
  for name, dim in zip(logical_axes, shape):
    axes = _mesh_axes_for(name, rules)
    if axes is None:
      spec.append(None)
      continue
    axes = (axes,) if isinstance(axes, str) else tuple(axes)
    axes = tuple(a for a in axes if mesh.shape[a] > 1 and a not in used)
    size = math.prod(mesh.shape[a] for a in axes)
    if not axes:
      spec.append(None)
    elif dim % size:
      key = (name, dim, axes)
      if key not in _warned:
        _warned.add(key)
        logging.warning(
            'Axis %r of size %d is not divisible by mesh axes %s (%d); '
            'leaving it replicated.', name, dim, axes, size)
      spec.append(None)
    else:
      used.update(axes)
      spec.append(axes[0] if len(axes) == 1 else axes)
  return P(*spec)


def param_shardings(
    abstract_boxed: Any, mesh: Mesh, rules: LogicalRules = DEFAULT_RULES
) -> Any:
  """NamedShardings for a pytree of (possibly nn.Partitioned-boxed) shapes.

  Leaves boxed with logical names (from `nn.with_logical_partitioning`) are
  sharded by the rules; unboxed leaves (optimizer counts, scalars) are
  replicated. The result has the structure of the *unboxed* tree.
  """

  def one(leaf):
    if isinstance(leaf, nn.Partitioned):
      return NamedSharding(
          mesh, logical_to_spec(leaf.names, leaf.value.shape, mesh, rules))
    return NamedSharding(mesh, P())

  return jax.tree.map(
      one, abstract_boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))


# Activation constraints -------------------------------------------------------

_context = threading.local()


@contextlib.contextmanager
def activation_sharding(mesh: Mesh | None,
                        rules: LogicalRules = DEFAULT_RULES) -> Iterator[None]:
  """Makes `constrain` active while tracing inside this context."""
  old = getattr(_context, 'value', None)
  _context.value = None if mesh is None else (mesh, tuple(rules))
  try:
    yield
  finally:
    _context.value = old


def constrain(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
  """Sharding constraint by logical names; a no-op outside a mesh context."""
  ctx = getattr(_context, 'value', None)
  if ctx is None:
    return x
  mesh, rules = ctx
  spec = logical_to_spec(logical_axes, x.shape, mesh, rules)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def batch_spec(ndim: int, mesh: Mesh, batch_size: int,
               rules: LogicalRules = DEFAULT_RULES) -> NamedSharding:
  """Sharding of a [B, ...] input batch: batch over data and fsdp."""
  spec = logical_to_spec(('act_batch',) + (None,) * (ndim - 1),
                         (batch_size,) + (1,) * (ndim - 1), mesh, rules)
  return NamedSharding(mesh, spec)
