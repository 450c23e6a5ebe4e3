"""Metrics to TensorBoard, a JSONL file and the log, plus a progress line."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

from absl import logging
import jax
import numpy as np


class MetricWriter:
  """Writes scalars to `workdir/tb` (TensorBoard) and `workdir/metrics.jsonl`.

  Only process 0 writes. Values may be jax arrays; they are fetched here, so
  call `write` every `log_every` steps rather than every step.
  """

  def __init__(self, workdir: str | None, *, tensorboard: bool = True):
    self._active = workdir is not None and jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    if self._active:
      os.makedirs(workdir, exist_ok=True)
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
      if tensorboard:
        try:
          from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
          self._tb = SummaryWriter(os.path.join(workdir, 'tb'))
        except ImportError:
          logging.warning('tensorboardX not installed: no TensorBoard events')

  def write(self, step: int, scalars: Mapping[str, Any]) -> dict[str, float]:
    values = {k: float(np.asarray(v)) for k, v in jax.device_get(
        dict(scalars)).items()}
    if self._active:
      if self._tb is not None:
        for k, v in values.items():
          self._tb.add_scalar(k, v, step)
        self._tb.flush()
      self._jsonl.write(json.dumps({'step': step, **values}) + '\n')
      self._jsonl.flush()
    return values

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
    if self._jsonl is not None:
      self._jsonl.close()


def read_metrics(workdir: str) -> list[dict[str, float]]:
  """All rows of `workdir/metrics.jsonl` (later rows win on repeated steps)."""
  path = os.path.join(workdir, 'metrics.jsonl')
  rows: dict[int, dict] = {}
  with open(path) as f:
    for line in f:
      row = json.loads(line)
      rows[row['step']] = row
  return [rows[k] for k in sorted(rows)]


class Progress:
  """Step, throughput and ETA; `line(step, tokens)` formats one log line."""

  def __init__(self, total_steps: int, start_step: int = 0):
    self.total = total_steps
    self._t0 = None
    self._step0 = start_step
    self._tokens = 0.0
    self._last_t = None
    self._last_tokens = 0.0

  def update(self, step: int, tokens: float) -> dict[str, float]:
    """Call after each step with the tokens it processed."""
    now = time.perf_counter()
    if self._t0 is None:  # The first step includes compilation: skip it.
      self._t0, self._step0 = now, step
      self._last_t = now
      return {}
    self._tokens += tokens
    dt = now - self._t0
    rate = (step - self._step0) / dt if dt > 0 else 0.0
    return {'tokens_per_sec': self._tokens / dt if dt > 0 else 0.0,
            'steps_per_sec': rate,
            'eta_sec': (self.total - step) / rate if rate > 0 else float('nan')}

  def line(self, step: int, stats: Mapping[str, float],
           metrics: Mapping[str, float]) -> str:
    eta = stats.get('eta_sec', float('nan'))
    eta_s = ('?' if not np.isfinite(eta)
             else time.strftime('%H:%M:%S', time.gmtime(eta)))
    parts = [f'step {step}/{self.total}']
    for k in ('loss', 'accuracy', 'grad_norm', 'learning_rate'):
      if k in metrics:
        parts.append(f'{k} {metrics[k]:.4g}')
    parts.append(f"{stats.get('tokens_per_sec', 0.0):,.0f} tok/s")
    parts.append(f'ETA {eta_s}')
    return ' | '.join(parts)
