"""The first process inside a sandbox: sets it up, runs the program, reports.

Not imported by the library: `sandbox.run_python` runs this file as

  [unshare ... |bwrap ...] python -I -S -B sandbox_init.py CONFIG_JSON

with the untrusted program on stdin and a status pipe on fd CONFIG['status_fd'].
It reads the whole program, then (isolation 'unshare') makes every mount
read-only (after hiding the caller's home, /tmp and the like under empty
tmpfs mounts) and mounts a size-limited tmpfs on the work directory, writes the
program there as main.py, forks, and in the child drops every capability,
sets the resource limits and execs `python -I -B main.py`. The parent (this
process; pid 1 of the sandbox's pid namespace under 'unshare' or 'bubblewrap')
reaps every process that ends up its child until the program exits, then
writes `{"exit": code}` or `{"signal": n}` to the status pipe and exits:
under a pid namespace the kernel then kills whatever is left; under
'rlimit' it is a child subreaper and kills the descendants itself. A setup
failure is reported as `{"setup_error": message}` and the program never runs.
Only the standard library is used (it runs with -S).
"""

import ctypes
import json
import os
import resource
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # The same number on every architecture.
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC = 2, 4, 4096, 16384


def _libc():
  return ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
  if ret != 0:
    err = ctypes.get_errno()
    raise OSError(err, f'{what}: {os.strerror(err)}')


class _MountAttr(ctypes.Structure):
  _fields_ = [('attr_set', ctypes.c_uint64), ('attr_clr', ctypes.c_uint64),
              ('propagation', ctypes.c_uint64), ('userns_fd', ctypes.c_uint64)]


def read_only_root(libc):
  """Makes every mount of this (private) mount namespace read-only."""
  attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
  libc.syscall.restype = ctypes.c_long
  ret = libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b'/', AT_RECURSIVE,
                     ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
  _check(ret, 'mount_setattr(/, AT_RECURSIVE, MOUNT_ATTR_RDONLY)')


def mount_tmpfs(libc, path, size_mb):
  ret = libc.mount(b'tmpfs', path.encode(), b'tmpfs', MS_NOSUID | MS_NODEV,
                   f'size={size_mb}m,mode=0700'.encode())
  _check(ret, f'mount tmpfs on {path}')


def _under(path, parent):
  return path == parent or path.startswith(parent.rstrip('/') + '/')


def hide_directories(libc, hide, keep, work):
  """Mounts an empty tmpfs on each of `hide`, then binds `keep` back.

  The caller's home, /tmp and the like vanish; the Python installation
  (`keep`) stays visible even where it lives under a hidden directory.
  """
  kept = []
  for path in keep:
    if any(_under(path, h) for h in hide) and os.path.isdir(path):
      kept.append((path, os.open(path, os.O_PATH | os.O_DIRECTORY)))
  for h in hide:
    if os.path.isdir(h) and not os.path.islink(h):
      ret = libc.mount(b'tmpfs', h.encode(), b'tmpfs', MS_NOSUID | MS_NODEV,
                       b'size=1m,mode=0755')
      _check(ret, f'mount tmpfs on {h}')
  for path, fd in kept:
    os.makedirs(path, exist_ok=True)
    ret = libc.mount(f'/proc/self/fd/{fd}'.encode(), path.encode(), None,
                     MS_BIND | MS_REC, None)
    _check(ret, f'bind {path}')
    os.close(fd)
  os.makedirs(work, exist_ok=True)


def no_nested_namespaces():
  """Defence in depth: the program may not create namespaces of its own.

  Nested user namespaces could not undo the read-only, locked mounts, but
  they are a large kernel attack surface. The limits are per user
  namespace, so this touches only the sandbox's; a kernel that refuses it
  leaves them as they were.
  """
  for kind in ('user', 'mnt', 'net', 'pid', 'ipc', 'uts', 'cgroup', 'time'):
    try:
      with open(f'/proc/sys/user/max_{kind}_namespaces', 'w') as f:
        f.write('0')
    except OSError:
      pass


def drop_capabilities(libc):
  """Empties the bounding set, so exec gives the program no capability."""
  for cap in range(64):
    if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
      if ctypes.get_errno() == 22:  # EINVAL: past the last capability.
        break
      _check(-1, f'prctl(PR_CAPBSET_DROP, {cap})')
  _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 'PR_SET_NO_NEW_PRIVS')


def _uid_processes():
  uid, n = os.getuid(), 0
  for pid in os.listdir('/proc'):
    try:
      if pid.isdigit() and os.stat(f'/proc/{pid}').st_uid == uid:
        n += 1
    except OSError:
      pass
  return n


def set_limits(cfg):
  cpu = cfg['cpu_s']
  nproc = cfg['max_procs']
  if cfg['isolation'] == 'rlimit' and os.getuid() != 0:
    # RLIMIT_NPROC counts every process of the real uid (root is exempt).
    nproc += _uid_processes()
  for name, soft, hard in [
      ('RLIMIT_CPU', cpu, cpu + 1),
      ('RLIMIT_AS', cfg['memory_bytes'], cfg['memory_bytes']),
      ('RLIMIT_NPROC', nproc, nproc),
      ('RLIMIT_FSIZE', cfg['file_bytes'], cfg['file_bytes']),
      ('RLIMIT_NOFILE', cfg['max_files'], cfg['max_files']),
      ('RLIMIT_CORE', 0, 0)]:
    resource.setrlimit(getattr(resource, name), (soft, hard))


def _children(me):
  kids = []
  for pid in os.listdir('/proc'):
    if not pid.isdigit():
      continue
    try:
      with open(f'/proc/{pid}/stat', 'rb') as f:
        stat = f.read()
    except OSError:
      continue
    fields = stat[stat.rfind(b')') + 2:].split()
    if int(fields[1]) == me:
      kids.append(int(pid))
  return kids


def kill_descendants():
  """Kills and reaps every child; orphans reparent here (subreaper)."""
  me = os.getpid()
  while True:
    for pid in _children(me):
      try:
        os.kill(pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
    try:
      pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
      return
    if pid == 0:
      time.sleep(0.005)


def wait_for(pid, cfg):
  """Reaps children until `pid` exits: (its wait status, process limit hit).

  In a pid namespace it also counts the namespace's processes every few ms
  and kills them all past cfg['max_procs']: RLIMIT_NPROC does not bind a
  caller whose real uid is 0 (the kernel exempts root's user_struct even
  inside a user namespace), so this watchdog is the process limit there.
  """
  watch = cfg['isolation'] in ('unshare', 'bubblewrap')
  limit_hit = False
  while True:
    try:
      done, status = os.waitpid(-1, os.WNOHANG if watch else 0)
    except InterruptedError:
      continue
    if done == pid:
      return status, limit_hit
    if done:
      continue  # Reaped an orphan; more may be waiting.
    procs = sum(1 for name in os.listdir('/proc') if name.isdigit())
    if not limit_hit and procs - 1 > cfg['max_procs']:
      limit_hit = True
      os.kill(-1, signal.SIGKILL)  # Everything in the namespace but us.
    time.sleep(0.005)


def main():
  cfg = json.loads(sys.argv[1])
  status_fd = cfg['status_fd']

  def report(**fields):
    os.write(status_fd, json.dumps(fields).encode())

  try:
    code = sys.stdin.buffer.read()
    devnull = os.open('/dev/null', os.O_RDWR)
    os.dup2(devnull, 0)
    libc = _libc()
    if cfg['isolation'] == 'unshare':
      no_nested_namespaces()
      hide_directories(libc, cfg['hide'], cfg['keep'], cfg['work'])
      read_only_root(libc)
      mount_tmpfs(libc, cfg['work'], cfg['disk_mb'])
    elif cfg['isolation'] == 'rlimit':
      _check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 'subreaper')
    os.chdir(cfg['work'])
    with open('main.py', 'wb') as f:
      f.write(code)
  except Exception as e:  # pylint: disable=broad-except
    report(setup_error=f'{type(e).__name__}: {e}')
    return

  pid = os.fork()
  if pid == 0:
    try:
      os.close(status_fd)
      os.closerange(3, 1 << 16)
      if cfg['isolation'] == 'unshare':  # bwrap --cap-drop ALL did it.
        drop_capabilities(libc)
      set_limits(cfg)
      python = cfg['python']
      os.execve(python, [python, '-I', '-B', 'main.py'], cfg['env'])
    except BaseException as e:  # pylint: disable=broad-except
      os.write(2, f'sandbox: could not start python: {e}\n'.encode())
    os._exit(127)

  # The pipes to the caller stay only with the program and its children.
  os.dup2(devnull, 1)
  os.dup2(devnull, 2)
  status, limit_hit = wait_for(pid, cfg)
  if os.WIFSIGNALED(status):
    report(signal=os.WTERMSIG(status), process_limit=limit_hit)
  else:
    report(exit=os.WEXITSTATUS(status), process_limit=limit_hit)
  os.close(status_fd)
  if cfg['isolation'] == 'rlimit':
    kill_descendants()


if __name__ == '__main__':
  main()
