"""One training run's bookkeeping: resume, checkpoints, metrics, progress.

  ctx = RunContext.from_config(workdir, config)
  state, start = ctx.resume(state, shardings, data_iter)
  for step in range(start, config.total_steps):
    state, metrics = train_step(state, batch, rng)
    if ctx.after_step(step + 1, state, metrics, tokens=n, data_iter=data_iter):
      break  # SIGTERM: saved, stop.
  ctx.close()
"""

from __future__ import annotations

import logging as std_logging
import os
import signal
from typing import Any, Mapping

from absl import logging
import jax

from jaxreason.train.checkpoint import Checkpointer
from jaxreason.train.metrics import MetricWriter, Progress


class _DropInfoFrom:
  """logging.Filter dropping INFO records from some packages (orbax is chatty)."""

  def __init__(self, packages):
    self._packages = tuple(f'/{p}/' for p in packages)

  def filter(self, record) -> bool:
    if record.levelno > 20:
      return True
    return not any(p in record.pathname for p in self._packages)


def quiet_library_logs(packages=('orbax', 'grain')) -> None:
  """Keeps warnings from `packages` but drops their INFO lines."""
  filt = _DropInfoFrom(packages)
  for handler in std_logging.getLogger().handlers + [
      logging.get_absl_handler()]:
    handler.addFilter(filt)


class StopRequested:
  """Set by SIGTERM (pre-emption): the loop saves and exits cleanly."""

  def __init__(self):
    self.flag = False
    try:
      signal.signal(signal.SIGTERM, self._handler)
    except ValueError:  # Not in the main thread (e.g. a notebook worker).
      pass

  def _handler(self, *_):
    logging.warning('SIGTERM: saving a checkpoint and stopping')
    self.flag = True


class RunContext:
  """Checkpointing, metrics and progress of one training run in `workdir`.

  The loop's step is the checkpoint's step (what `restore_or_init` returns
  and `after_step` saves under), which may count something else than
  optimiser updates (episodes, chunks). `host_state` {name: HostState}, e.g.
  a replay buffer, is saved in workdir/name beside each checkpoint and
  restored with it (train/checkpoint.py). `extra`, a JSON-able dict given to
  `after_step`, is saved with the checkpoint and is `self.extra` after a
  restore (None on a fresh start).
  """

  def __init__(self, workdir: str, total_steps: int, *, save_every: int,
               log_every: int, max_to_keep: int = 3, async_save: bool = True,
               host_state: Mapping[str, Any] | None = None):
    self.workdir = workdir
    os.makedirs(workdir, exist_ok=True)
    self.ckpt = Checkpointer(os.path.join(workdir, 'checkpoints'),
                             save_every=save_every, max_to_keep=max_to_keep,
                             async_save=async_save, host_state=host_state)
    self.writer = MetricWriter(workdir)
    self.total_steps = total_steps
    self.log_every = log_every
    self.progress: Progress | None = None
    self.extra: dict | None = None
    self.stop = StopRequested()

  @classmethod
  def from_config(cls, workdir: str, config: Any, **kwargs) -> 'RunContext':
    """total_steps, checkpoint_every and log_every taken from a recipe config."""
    return cls(workdir, config.total_steps,
               save_every=config.checkpoint_every, log_every=config.log_every,
               **kwargs)

  def resume(self, state, shardings, data_iter=None):
    """The latest checkpoint onto `shardings` if any, else `state`: (state, step)."""
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        state, shardings)
    return self.restore_or_init(abstract, lambda: state, data_iter)

  def restore_or_init(self, abstract_state, init_fn, data_iter=None):
    """Latest checkpoint if there is one, else `init_fn()`; returns (state, step)."""
    start = self.ckpt.latest_step()
    if start is not None:
      state, self.extra = self.ckpt.restore(abstract_state, data_iter, start)
      logging.info('Resuming from step %d', start)
    else:
      state, start = init_fn(), 0
    self.progress = Progress(self.total_steps, start)
    return state, start

  def after_step(self, step: int, state, metrics, *, tokens: float = 0.0,
                 data_iter=None, extra: dict | None = None,
                 save: bool = True) -> bool:
    """Logs, saves when due; `step` counts completed steps. True = stop now.

    `save=False`: the caller checkpoints itself (e.g. only at the end of a
    round, with its own `extra`), so nothing is saved here, not even on
    SIGTERM; the caller sees the returned flag and stops.
    """
    last = step == self.total_steps or self.stop.flag
    log_now = step % self.log_every == 0 or last
    if log_now:
      # Steps are dispatched asynchronously: without waiting for this one,
      # the rate would count steps queued but not run (the first log after
      # a start or resume showed 40x the real tok/s and a wrong ETA).
      jax.block_until_ready(metrics)
    stats = self.progress.update(step, tokens)
    if log_now:
      values = self.writer.write(step, {**metrics, **stats})
      logging.info('%s', self.progress.line(step, stats, values))
    if save:
      self.ckpt.save(step, state, data_iter, force=last, extra=extra)
    return self.stop.flag

  def close(self) -> None:
    self.ckpt.close()
    self.writer.close()
