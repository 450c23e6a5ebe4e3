"""Run picklable calls in worker processes under a hard wall-clock timeout.

SymPy parsing and simplification can run for minutes (or forever) on
adversarial input, and `signal.alarm` only works in the main thread, so a
grader that is called from data-loader or RL rollout threads cannot interrupt
them in-process. `TimeoutPool` keeps a few persistent worker processes and
hands each call to an idle one over a pipe. If the answer does not come back
within the timeout the worker is killed (SIGKILL) and replaced lazily on the
next call, so a hang costs the caller `timeout` seconds and nothing else.

Workers are fresh interpreters (`python -c` that calls `_worker_main`) rather
than `multiprocessing` children: nothing is inherited from the caller (JAX
threads, locks) and, unlike the `spawn` start method, the caller's
`__main__` is never re-imported, so scripts without a main guard, stdin and
notebooks all work. Calls and results are pickled over two OS pipes (POSIX).

Thread safety: any number of threads may call `TimeoutPool.call` at once. A
worker serves one call at a time; a thread that finds every worker busy waits
for one to be returned. Only the time the call itself runs counts against its
timeout; starting a worker (importing SymPy, about a second) is bounded
separately by `startup_timeout`. A forked child process never reuses its
parent's workers: the pool notices the new pid and starts its own.
"""

from __future__ import annotations

import atexit
import importlib
import math
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from multiprocessing import connection
from typing import Any, Callable

from absl import logging

# Returned by `TimeoutPool.call` when the call did not finish (timeout, crash,
# worker failed to start); distinct from any value the function can return.
TIMED_OUT = object()
# The directory that holds the `jaxreason` package, for the workers' path.
_PACKAGE_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _worker_main(read_fd: int, write_fd: int, initializer: str) -> None:
  """Worker loop: receive (fn, args), send (ok, value) until EOF."""
  # Ctrl-C is for the parent; a worker ends when the parent's pipe closes.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  recv = connection.Connection(read_fd, writable=False)
  send = connection.Connection(write_fd, readable=False)
  if initializer:
    module, name = initializer.rsplit(':', 1)
    getattr(importlib.import_module(module), name)()
  send.send(('ready', None))
  while True:
    try:
      fn, args, timeout = recv.recv()
    except (EOFError, OSError):  # Parent went away.
      return
    _limit_cpu(timeout)
    try:
      result = (True, fn(*args))
    except Exception as e:  # pylint: disable=broad-except
      result = (False, f'{type(e).__name__}: {e}')
    try:
      send.send(result)
    except (OSError, ValueError):
      return


def _limit_cpu(timeout: float) -> None:
  """Has the kernel kill this worker after `timeout` + 5 more CPU seconds.

  The parent kills an overrunning worker itself; this SIGXCPU limit is for
  when the parent is gone and the call is stuck in C code (a huge integer
  power), where neither Python signal handlers nor threads get to run.
  """
  try:
    used = resource.getrusage(resource.RUSAGE_SELF)
    budget = math.ceil(used.ru_utime + used.ru_stime + timeout + 5)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or budget < hard:
      resource.setrlimit(resource.RLIMIT_CPU, (budget, hard))
  except (ValueError, OSError):
    pass


def _qualified_name(fn: Callable[[], None] | None) -> str:
  return f'{fn.__module__}:{fn.__qualname__}' if fn is not None else ''


class _Worker:
  """One worker process and the parent's ends of its two pipes."""

  def __init__(self, initializer: str, startup_timeout: float):
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [_PACKAGE_ROOT] + ([env['PYTHONPATH']] if env.get('PYTHONPATH')
                           else []))
    try:
      self.process = subprocess.Popen(
          [sys.executable, '-c',
           f'import {__name__} as m; m._worker_main({to_child_r}, '
           f'{from_child_w}, {initializer!r})'],
          pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
          env=env)
    finally:
      os.close(to_child_r)
      os.close(from_child_w)
    self.send = connection.Connection(to_child_w, readable=False)
    self.recv = connection.Connection(from_child_r, writable=False)
    try:
      if not self.recv.poll(startup_timeout):
        raise TimeoutError(f'worker did not start in {startup_timeout} s')
      tag, _ = self.recv.recv()
      assert tag == 'ready', tag
    except BaseException:
      self.close()
      raise

  def close(self) -> None:
    for conn in (self.send, self.recv):
      try:
        conn.close()
      except OSError:
        pass
    if self.process.poll() is None:
      self.process.kill()
    try:
      self.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
      pass


class TimeoutPool:
  """A lazily started set of worker processes with a hard per-call timeout.

  Attributes:
    max_workers: most worker processes alive at once.
  """

  def __init__(self, max_workers: int = 2,
               initializer: Callable[[], None] | None = None,
               startup_timeout: float = 120.0):
    """Makes an empty pool; workers start on first use.

    Args:
      max_workers: most worker processes alive at once.
      initializer: module-level function each worker runs once at start
        (for example, import SymPy so that the first call is not slow).
      startup_timeout: seconds a new worker may take to become ready.
    """
    assert max_workers >= 1, max_workers
    self.max_workers = max_workers
    self._initializer = _qualified_name(initializer)
    self._startup_timeout = startup_timeout
    self._cond = threading.Condition()
    self._idle: list[_Worker] = []
    self._num_alive = 0
    self._pid = os.getpid()
    atexit.register(self.close)

  def _check_pid(self) -> None:
    """After a fork, forget the parent's workers (they are not ours)."""
    if os.getpid() != self._pid:
      self._cond = threading.Condition()
      self._idle = []
      self._num_alive = 0
      self._pid = os.getpid()

  def _acquire(self) -> _Worker:
    with self._cond:
      while True:
        if self._idle:
          return self._idle.pop()
        if self._num_alive < self.max_workers:
          self._num_alive += 1
          break
        self._cond.wait()
    try:  # Start outside the lock: other threads keep using idle workers.
      return _Worker(self._initializer, self._startup_timeout)
    except BaseException:
      with self._cond:
        self._num_alive -= 1
        self._cond.notify()
      raise

  def _release(self, worker: _Worker, healthy: bool) -> None:
    if not healthy:
      worker.close()
    with self._cond:
      if healthy:
        self._idle.append(worker)
      else:
        self._num_alive -= 1
      self._cond.notify()

  def warmup(self, num_workers: int | None = None) -> None:
    """Starts workers now (up to `num_workers`) so later calls do not wait."""
    self._check_pid()
    num_workers = self.max_workers if num_workers is None else num_workers
    workers = []
    try:
      for _ in range(min(num_workers, self.max_workers)):
        with self._cond:
          if self._num_alive >= self.max_workers and not self._idle:
            break
        workers.append(self._acquire())
    finally:
      for w in workers:
        self._release(w, healthy=True)

  def call(self, fn: Callable[..., Any], args: tuple[Any, ...],
           timeout: float) -> Any:
    """Runs `fn(*args)` in a worker; `TIMED_OUT` if it fails or overruns.

    Args:
      fn: a picklable (module-level) function.
      args: picklable arguments.
      timeout: seconds the call may run before its worker is killed.

    Returns:
      What `fn` returned, or `TIMED_OUT` if it timed out, raised, or the
      worker could not be started or died.
    """
    self._check_pid()
    try:
      worker = self._acquire()
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('grader worker failed to start: %s', e)
      return TIMED_OUT
    healthy = False
    try:
      worker.send.send((fn, args, timeout))
      if worker.recv.poll(timeout):
        ok, value = worker.recv.recv()
        healthy = True
        if ok:
          return value
        logging.warning('grader worker call raised %s', value)
        return TIMED_OUT
      logging.warning('grader worker call exceeded %.1f s; killing worker',
                      timeout)
      return TIMED_OUT
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('grader worker died or call failed: %r', e)
      return TIMED_OUT
    finally:
      self._release(worker, healthy)

  def close(self) -> None:
    """Kills the idle workers; busy ones go back to the pool when done.

    At interpreter exit (`atexit`) this kills the idle workers; a worker that
    is busy then exits by itself when it finds the parent's pipe closed.
    """
    with self._cond:
      idle, self._idle = self._idle, []
      self._num_alive -= len(idle)
    if os.getpid() == self._pid:
      for w in idle:
        w.close()


def sleep_and_return(seconds: float, value: Any, *unused_args: Any) -> Any:
  """Sleeps then returns `value`: a picklable slow call for tests."""
  del unused_args
  time.sleep(seconds)
  return value
