"""Runs untrusted Python (model-written tool code) in an isolated process.

  from jaxreason.reasoning import run_python
  r = run_python('import sympy\\nprint(sympy.factorint(2**32 + 1))',
                 timeout_s=5, memory_mb=512)
  r.status, r.stdout   # ('ok', '{641: 1, 6700417: 1}\\n')

Each call starts `sandbox_init.py` in a fresh process tree, isolated by the
strongest mechanism the machine offers (detected once, `detect_isolation()`):

  'unshare'     util-linux unshare: new user, network, pid and mount
                namespaces; the caller's home, /tmp, /var/tmp, /dev/shm
                hidden under empty tmpfs (the Python installation bound
                back), every mount read-only, the work directory a
                size-limited tmpfs, no capabilities, no network interface
                but a down loopback.
  'bubblewrap'  bwrap (used when unprivileged namespaces are off but a setuid
                bwrap is installed): the same namespaces and hiding, /
                bound read-only.
  'rlimit'      weaker fallback: resource limits, a new session, a child
                subreaper, an empty environment; NO network or filesystem
                isolation (see docs/sandbox.md).

In every level the program gets resource limits (CPU seconds, address space,
processes, file size, open files, no core dumps), a fresh temporary working
directory (removed afterwards), a fixed tiny environment and /dev/null on
stdin. The call waits at most `timeout_s` wall seconds, keeps at most
`max_output_bytes` of stdout and of stderr, and kills every process of the
sandbox before it returns. It never raises for anything the program does:
code that does not parse, loops, forks, or prints megabytes comes back as a
status. Calls are independent and can run concurrently from threads.

Status: 'ok' (exit 0), 'error' (non-zero exit, e.g. an exception or a
SyntaxError, or a sandbox setup failure), 'timeout' (wall or CPU limit),
'memory' (an uncaught MemoryError: the address-space limit),
'output_limit' (stdout or stderr past the cap; output truncated) and
'killed' (ended by a signal, e.g. a segfault; exit_code is -signal).
The program is `main.py` in its working directory; stderr names it by that
relative name (the random directory is cut out of tracebacks).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from absl import logging

STATUSES = ('ok', 'error', 'timeout', 'memory', 'output_limit', 'killed')
ISOLATIONS = ('unshare', 'bubblewrap', 'rlimit')
INIT = pathlib.Path(__file__).with_name('sandbox_init.py')
TRUNCATED = '\n[sandbox: output truncated after {} bytes]\n'
# After the program exits, how long to wait for its pipes to reach EOF.
_DRAIN_S = 0.5


@dataclasses.dataclass(frozen=True)
class SandboxResult:
  """What one sandboxed run returned."""
  stdout: str
  stderr: str
  exit_code: int | None  # -N when killed by signal N; None if unknown.
  status: str            # One of STATUSES.
  isolation: str = 'unshare'  # One of ISOLATIONS.
  wall_s: float = 0.0

  @property
  def ok(self) -> bool:
    return self.status == 'ok'


def _env(work: str) -> dict[str, str]:
  """The program's whole environment: nothing of the caller's."""
  return {
      'PATH': '/usr/local/bin:/usr/bin:/bin', 'LANG': 'C.UTF-8',
      'HOME': work, 'TMPDIR': work, 'PYTHONDONTWRITEBYTECODE': '1',
      'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1',
      'MKL_NUM_THREADS': '1',
  }


def _hidden() -> list[str]:
  """Directories replaced by an empty tmpfs inside the sandbox."""
  dirs = ['/root', '/home', '/tmp', '/var/tmp', '/dev/shm', '/run/user',
          os.path.expanduser('~')]
  dirs = sorted({os.path.realpath(d) for d in dirs if os.path.isdir(d)})
  # A directory under another hidden one is gone already.
  return [d for d in dirs
          if not any(d.startswith(p.rstrip('/') + '/') for p in dirs)]


def _kept() -> list[str]:
  """The Python installation the program runs on, hidden or not."""
  paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
           os.path.dirname(os.path.realpath(sys.executable))]
  return sorted({os.path.realpath(p) for p in paths})


def _prefix(isolation: str, work: str) -> list[str]:
  """The command that wraps the init process for one isolation level."""
  if isolation == 'unshare':
    return [shutil.which('unshare') or 'unshare', '--user', '--map-root-user',
            '--net', '--pid', '--fork', '--kill-child', '--mount-proc',
            '--propagation', 'private', '--']
  if isolation == 'bubblewrap':
    return [shutil.which('bwrap') or 'bwrap', '--unshare-all',
            '--die-with-parent', '--new-session', '--cap-drop', 'ALL',
            '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc',
            *[a for d in _hidden() for a in ('--tmpfs', d)],
            *[a for p in _kept() for a in ('--ro-bind', p, p)],
            '--bind', work, work, '--chdir', work, '--']
  if isolation == 'rlimit':
    return []
  raise ValueError(f'isolation={isolation!r}: expected one of {ISOLATIONS}')


@functools.lru_cache(maxsize=None)
def detect_isolation() -> str:
  """The strongest isolation that works here: tries each level once."""
  for level in ('unshare', 'bubblewrap'):
    exe = 'unshare' if level == 'unshare' else 'bwrap'
    if shutil.which(exe) is None:
      continue
    r = run_python('print(6 * 7)', timeout_s=20, memory_mb=256,
                   isolation=level)
    if r.status == 'ok' and r.stdout == '42\n':
      return level
    logging.warning('sandbox: %s is installed but failed: %s %s', exe,
                    r.status, r.stderr[-500:])
  logging.warning(
      'sandbox: no namespaces (unshare or bwrap); falling back to isolation '
      "'rlimit', which does not isolate the network or the filesystem%s",
      ' and runs programs as root' if os.geteuid() == 0 else '')
  return 'rlimit'


def _classify(report: dict, stderr: bytes) -> tuple[str, int | None]:
  if 'signal' in report:
    sig = report['signal']
    return ('timeout' if sig == signal.SIGXCPU else 'killed'), -sig
  if 'exit' in report:
    code = report['exit']
    if code == 0:
      return 'ok', 0
    lines = stderr.decode('utf-8', 'replace').strip().splitlines()
    if lines and lines[-1].startswith('MemoryError'):
      return 'memory', code
    return 'error', code
  return 'killed', None  # The init process itself was killed.


def _kill_group(proc: subprocess.Popen) -> None:
  # proc is not reaped yet, so its pid (the group id) cannot be reused.
  try:
    os.killpg(proc.pid, signal.SIGKILL)
  except (ProcessLookupError, PermissionError):
    pass


def _remove(path: str) -> None:
  def force(func, p, _):  # A program may chmod its files; never follow links.
    try:
      os.chmod(os.path.dirname(p), 0o700)
      if not os.path.islink(p):
        os.chmod(p, 0o700)
      func(p)
    except OSError:
      pass
  shutil.rmtree(path, onerror=force)


def run_python(code: str, *, timeout_s: float = 10.0, memory_mb: int = 512,
               max_output_bytes: int = 64 * 1024, max_procs: int = 64,
               disk_mb: int = 64, isolation: str | None = None
               ) -> SandboxResult:
  """Runs `code` as a Python program in a sandbox (see the module doc).

  Args:
    code: the program's source text.
    timeout_s: wall-clock limit of the whole call (the CPU limit of each
      process is its ceiling).
    memory_mb: address-space limit of each process of the program.
    max_output_bytes: bytes kept of stdout and of stderr each; more ends the
      run with status 'output_limit'.
    max_procs: processes (and threads) the program may run at once.
    disk_mb: size of the work directory ('unshare') and largest file.
    isolation: force a level of ISOLATIONS; default `detect_isolation()`.
  """
  if not isinstance(code, str):
    raise TypeError(f'run_python: code must be str, got {type(code).__name__}')
  for name, value in [('timeout_s', timeout_s), ('memory_mb', memory_mb),
                      ('max_output_bytes', max_output_bytes),
                      ('max_procs', max_procs), ('disk_mb', disk_mb)]:
    if not value > 0:
      raise ValueError(f'run_python: {name} must be > 0, got {value!r}')
  isolation = isolation or detect_isolation()
  if isolation not in ISOLATIONS:
    raise ValueError(f'isolation={isolation!r}: expected one of {ISOLATIONS}')
  start = time.monotonic()
  root = tempfile.mkdtemp(prefix='jaxreason-sandbox-')
  work = os.path.join(root, 'work')
  os.mkdir(work, 0o700)
  cfg = {
      'isolation': isolation, 'work': work, 'python': sys.executable,
      'env': _env(work), 'cpu_s': int(math.ceil(timeout_s)),
      'memory_bytes': int(memory_mb) << 20, 'max_procs': int(max_procs),
      'file_bytes': int(disk_mb) << 20, 'max_files': 256,
      'disk_mb': int(disk_mb), 'hide': _hidden(), 'keep': _kept(),
  }
  status_r, status_w = os.pipe()
  cfg['status_fd'] = status_w
  argv = _prefix(isolation, work) + [
      sys.executable, '-I', '-S', '-B', str(INIT), json.dumps(cfg)]
  proc = None
  try:
    try:
      proc = subprocess.Popen(
          argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, cwd=root, env=_env(work),
          pass_fds=(status_w,), start_new_session=True)
    finally:
      os.close(status_w)
    # Lone surrogates pass through and fail to decode: a SyntaxError.
    source = code.encode('utf-8', 'surrogatepass')
    out, err, report, over, timed_out = _collect(
        proc, source, status_r, start + timeout_s, max_output_bytes)
  finally:
    if proc is not None:
      _kill_group(proc)
      proc.wait()
      for f in (proc.stdin, proc.stdout, proc.stderr):
        if not f.closed:
          f.close()
    os.close(status_r)
    _remove(root)
  if 'setup_error' in report:
    status, exit_code = 'error', None
    err += (f'sandbox ({isolation}) setup failed: '
            f'{report["setup_error"]}\n').encode()
  else:
    status, exit_code = _classify(report, err)
  if report.get('process_limit'):
    err += (f'sandbox: more than {max_procs} processes; all were '
            'killed\n').encode()
  if timed_out:
    status = 'timeout'
  elif over:
    status = 'output_limit'
  stdout = out.decode('utf-8', 'replace')
  # Tracebacks name 'main.py', not a random temporary path (stable prompts).
  stderr = err.decode('utf-8', 'replace').replace(work + os.sep, '')
  if over == 'stdout':
    stdout += TRUNCATED.format(max_output_bytes)
  if over == 'stderr':
    stderr += TRUNCATED.format(max_output_bytes)
  return SandboxResult(stdout, stderr, exit_code, status, isolation,
                       time.monotonic() - start)


def _collect(proc, source, status_r, deadline, cap):
  """Writes `source` to stdin, reads stdout, stderr and the status pipe.

  Until the program is done or a limit is hit; nothing here blocks past
  `deadline`. Returns (stdout, stderr, report, which stream went over the cap
  or None, whether the deadline passed).
  """
  bufs = {'stdout': bytearray(), 'stderr': bytearray()}
  status = bytearray()
  pending = memoryview(source)
  sel = selectors.DefaultSelector()
  os.set_blocking(proc.stdin.fileno(), False)
  sel.register(proc.stdin, selectors.EVENT_WRITE, 'stdin')
  sel.register(proc.stdout, selectors.EVENT_READ, 'stdout')
  sel.register(proc.stderr, selectors.EVENT_READ, 'stderr')
  sel.register(status_r, selectors.EVENT_READ, 'status')
  over, timed_out, finished_at = None, False, None
  try:
    while sel.get_map():
      now = time.monotonic()
      if finished_at is not None and now > finished_at + _DRAIN_S:
        break  # Its pipes are held open by something; killed below.
      if now >= deadline:
        timed_out = finished_at is None
        break
      wait = deadline - now
      if finished_at is not None:
        wait = min(wait, finished_at + _DRAIN_S - now)
      for key, _ in sel.select(timeout=wait):
        fd = key.fileobj if isinstance(key.fileobj, int) else (
            key.fileobj.fileno())
        if key.data == 'stdin':
          try:
            pending = pending[os.write(fd, pending[:65536]):]
          except BlockingIOError:
            continue
          except BrokenPipeError:  # The init ended before reading it all.
            pending = pending[:0]
          if not pending:
            sel.unregister(key.fileobj)
            key.fileobj.close()
          continue
        chunk = os.read(fd, 65536)
        if not chunk:
          sel.unregister(key.fileobj)
          if key.data == 'status':
            finished_at = time.monotonic()
          continue
        if key.data == 'status':
          status += chunk
          continue
        buf = bufs[key.data]
        buf += chunk
        if len(buf) > cap:
          del buf[cap:]
          over = key.data
      if over:
        break
  finally:
    sel.close()
  try:
    report = json.loads(bytes(status)) if status else {}
  except ValueError:
    report = {}
  return bytes(bufs['stdout']), bytes(bufs['stderr']), report, over, timed_out
