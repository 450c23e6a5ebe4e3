"""One orbax CheckpointManager for the train state and the data iterator.

Orbax writes each step into a temporary directory and renames it when it is
complete, so a run killed during a save leaves the previous checkpoint as the
latest one; leftover temporary directories are removed on the next start.
Restarting with the same workdir resumes the state *and* the grain iterator,
so the next batches are exactly those an uninterrupted run would have seen.

Host state that is not a pytree of arrays (a replay buffer of episodes) goes
beside the checkpoints: each `HostState` saves itself for a step before that
step's checkpoint is written, and is restored for the step the checkpoint
restores, so the two never disagree after a kill; saves of steps whose
checkpoints are gone are pruned.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Protocol, Sequence

from absl import logging
import grain
import jax
import orbax.checkpoint as ocp


class HostState(Protocol):
  """Host-side state saved beside the checkpoints, one folder per object."""

  def save(self, directory: str, step: int) -> None:
    """Saves the state of `step` (atomically) into `directory`."""

  def restore(self, directory: str, step: int) -> Any:
    """Replaces the contents with what `save(directory, step)` wrote."""

  def prune(self, directory: str, keep_steps: Sequence[int]) -> None:
    """Deletes the saves of steps not in `keep_steps`."""


class Checkpointer:
  """Saves and restores {'state': TrainState, 'data': grain iterator}.

  `host_state` {name: HostState} is saved in `host_dir/name` (default: the
  folder above `directory`, i.e. the workdir) beside each checkpoint.
  """

  def __init__(self, directory: str, *, save_every: int = 1000,
               max_to_keep: int | None = 3, async_save: bool = True,
               host_state: Mapping[str, HostState] | None = None,
               host_dir: str | None = None):
    self.directory = os.path.abspath(directory)
    self.host_state = dict(host_state or {})
    self.host_dir = host_dir or os.path.dirname(self.directory)
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
    if self.host_state and (force or self._manager.should_save(step)):
      for name, host in self.host_state.items():
        host.save(os.path.join(self.host_dir, name), step)
    items = {'state': ocp.args.StandardSave(state)}
    if data_iter is not None:
      items['data'] = grain.checkpoint.CheckpointSave(data_iter)
    if extra is not None:
      items['extra'] = ocp.args.JsonSave(extra)
    saved = self._manager.save(step, args=ocp.args.Composite(**items),
                               force=force)
    if saved:
      logging.info('Saving checkpoint for step %d to %s', step, self.directory)
      keep = sorted(set(self.all_steps()) | {step})
      for name, host in self.host_state.items():
        host.prune(os.path.join(self.host_dir, name), keep)
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
    # On the directory, not `item_metadata`: a manager that did not save
    # the step (a restarted process) knows no handler for 'extra' and its
    # metadata says None.
    if os.path.isdir(os.path.join(self.directory, str(step), 'extra')):
      items['extra'] = ocp.args.JsonRestore()
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    logging.info('Restored checkpoint of step %d from %s', step,
                 self.directory)
    extra = restored['extra'] if 'extra' in items else None
    for name, host in self.host_state.items():
      host.restore(os.path.join(self.host_dir, name), step)
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
