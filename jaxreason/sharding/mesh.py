"""Device mesh from a config, and multi-host initialisation."""

from __future__ import annotations

import math
from typing import Sequence

from absl import logging
import jax
import numpy as np
from jax.sharding import Mesh

MESH_AXES = ('data', 'fsdp', 'tensor')
DEFAULT_MESH = (('data', 1), ('fsdp', -1), ('tensor', 1))


def make_mesh(
    axes: Sequence[Sequence[object]] = DEFAULT_MESH,
    devices: Sequence[jax.Device] | None = None,
) -> Mesh:
  """Builds a mesh from `[(name, size), ...]`; one size may be -1 (the rest).

  Example: `make_mesh([('data', 2), ('fsdp', -1), ('tensor', 2)])` on 16
  devices gives a 2x4x2 mesh. On real TPU/GPU topologies the device order
  comes from `jax.make_mesh`, which places the innermost (tensor) axis on
  the fastest interconnect.
  """
  names = tuple(str(a[0]) for a in axes)
  sizes = [int(a[1]) for a in axes]
  if devices is None:
    devices = jax.devices()
  n = len(devices)
  if sizes.count(-1) > 1:
    raise ValueError(f'mesh {list(axes)}: at most one axis may be -1')
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if n % known:
      raise ValueError(
          f'mesh {list(axes)}: {n} devices not divisible by {known}')
    sizes[sizes.index(-1)] = n // known
  if math.prod(sizes) != n:
    raise ValueError(
        f'mesh {list(axes)} needs {math.prod(sizes)} devices, have {n}')
  # Auto axes: XLA's GSPMD propagates shardings from the annotations we give
  # (parameters, batch, activation constraints); see sharding/rules.py.
  auto = (jax.sharding.AxisType.Auto,) * len(names)
  try:  # Topology-aware device order on TPU/GPU (ICI rings per axis).
    mesh = jax.make_mesh(tuple(sizes), names, axis_types=auto,
                         devices=devices)
  except (ValueError, NotImplementedError, AssertionError) as e:
    logging.warning('jax.make_mesh failed (%s); using plain device order', e)
    mesh = Mesh(np.asarray(devices).reshape(sizes), names, axis_types=auto)
  logging.info('Mesh %s over %d devices', dict(zip(names, sizes)), n)
  return mesh


def maybe_initialize_distributed(enabled: bool, **kwargs) -> None:
  """Calls `jax.distributed.initialize()` for multi-host runs.

  On Cloud TPU pod slices and SLURM/Open MPI clusters the coordinator address,
  process count and id are discovered automatically; pass them in `kwargs`
  otherwise. Must run before anything touches a device.
  """
  if not enabled:
    return
  jax.distributed.initialize(**kwargs)
  logging.info('jax.distributed: process %d of %d, %d local / %d devices',
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
