"""RunContext's progress line: throughput counts steps that ran, not queued."""

import json
import time

import jax
import jax.numpy as jnp

from jaxreason.train.metrics import Progress
from jaxreason.train.run_context import RunContext


@jax.jit
def _slow_step(x):
  """About a tenth of a second of matmuls, returned before it has run."""
  return jax.lax.fori_loop(0, 20, lambda i, y: jnp.tanh(y @ y), x).sum()


def test_logged_throughput_waits_for_the_step(tmp_path):
  x = jnp.ones((384, 384)) * 1e-3
  jax.block_until_ready(_slow_step(x))  # Compiled outside the timing.
  ctx = RunContext(str(tmp_path), total_steps=4, save_every=100, log_every=2,
                   async_save=False)
  ctx.progress = Progress(4)  # As restore_or_init sets it on a fresh start.
  tokens = 1000.0
  ctx.after_step(1, None, {'loss': jax.block_until_ready(_slow_step(x))},
                 tokens=tokens, save=False)  # The first step starts the clock.
  t0 = time.perf_counter()
  for step in (2, 3, 4):
    # Dispatch returns at once; the device is still busy when logging.
    ctx.after_step(step, None, {'loss': _slow_step(x)}, tokens=tokens,
                   save=False)
  true_rate = 3 * tokens / (time.perf_counter() - t0)
  ctx.close()
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  last = [r for r in rows if r['step'] == 4][0]
  # Counting queued steps as done gave many times the true rate.
  assert last['tokens_per_sec'] < 2.0 * true_rate, (last, true_rate)
  assert last['tokens_per_sec'] > 0.5 * true_rate, (last, true_rate)
