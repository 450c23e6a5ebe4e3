"""One orbax CheckpointManager for the train state and the data iterator.

Orbax writes each step into a temporary directory and renames it when it is
complete, so a run killed during a save leaves the previous checkpoint as the
latest one; leftover temporary directories are removed on the next start.
Restarting with the same workdir resumes the state *and* the grain iterator,
so the next batches are exactly those an uninterrupted run would have seen.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
import grain
import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores {'state': TrainState, 'data': grain iterator}."""

  def __init__(self, directory: str, *, save_every: int = 1000,
               max_to_keep: int | None = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            save_interval_steps=save_every,
            max_to_keep=max_to_keep,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
            create=True,
        ),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_iter: Any = None, *,
           force: bool = False, extra: dict | None = None) -> bool:
    """Saves if `step` is due (or `force`). Returns whether it saved."""
    items = {'state': ocp.args.StandardSave(state)}
    if data_iter is not None:
      items['data'] = grain.checkpoint.CheckpointSave(data_iter)
    if extra is not None:
      items['extra'] = ocp.args.JsonSave(extra)
    saved = self._manager.save(step, args=ocp.args.Composite(**items),
                               force=force)
    if saved:
      logging.info('Saving checkpoint for step %d to %s', step, self.directory)
    return saved

  def restore(self, abstract_state: Any, data_iter: Any = None,
              step: int | None = None) -> tuple[Any, dict | None]:
    """Restores the state (onto the shardings in `abstract_state`).

    `data_iter` is restored in place. Returns (state, extra).
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}')
    items = {'state': ocp.args.StandardRestore(abstract_state)}
    if data_iter is not None:
      items['data'] = grain.checkpoint.CheckpointRestore(data_iter)
    metadata = self._manager.item_metadata(step)
    if metadata is not None and 'extra' in metadata and (
        metadata['extra'] is not None):
      items['extra'] = ocp.args.JsonRestore()
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    logging.info('Restored checkpoint of step %d from %s', step,
                 self.directory)
    extra = restored['extra'] if 'extra' in items else None
    return restored['state'], extra

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def restore_params(directory: str, abstract_params: Any | None = None,
                   step: int | None = None) -> Any:
  """The params of a saved train state, without its optimizer state.

  With `abstract_params` (a tree of `jax.ShapeDtypeStruct`, e.g. from
  `jax.eval_shape`): a partial restore onto exactly that target, so it
  works on any topology; leaves without a sharding go to the first local
  device, leaves with one are read straight into it (a mesh). Without it:
  the saved tree as saved, onto the saved shardings (same topology only).
  """
  directory = os.path.abspath(directory)
  manager = ocp.CheckpointManager(directory)
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'{directory}: no checkpoint steps in it')
    if abstract_params is None:
      restored = manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    else:
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      sharding = lambda a: getattr(a, 'sharding', None) or device
      target = jax.tree.map(
          lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype,
                                         sharding=sharding(a)),
          abstract_params)
      args = jax.tree.map(lambda a: ocp.ArrayRestoreArgs(sharding=sharding(a)),
                          abstract_params)
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.PyTreeRestore(
              item={'params': target}, restore_args={'params': args},
              partial_restore=True)))
  finally:
    manager.close()
  logging.info('Restored params of step %d from %s', step, directory)
  return restored['state']['params']
