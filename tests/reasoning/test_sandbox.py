"""Adversarial tests of the Python sandbox (jaxreason/reasoning/sandbox.py).

Every hostile program of PROGRAMS runs once, all of them concurrently in
threads (module fixture `results`); each test then checks its status, that
the test process and the files outside the sandbox are untouched, and that no
process of any call is left. The programs that need real isolation
(namespaces) skip with a reason where only the 'rlimit' fallback works.
"""

import concurrent.futures
import os
import pathlib
import signal
import sys
import textwrap
import time
import uuid

import pytest

from jaxreason.reasoning import run_python
from jaxreason.reasoning import SandboxResult
from jaxreason.reasoning import sandbox

MARK = 'sbxmark' + uuid.uuid4().hex[:12]  # In the cmdline of spawned children.
SECRET = 'hunter2-' + uuid.uuid4().hex
TIMEOUT_S = 2.0
SLACK_S = 20.0
THIS_FILE = pathlib.Path(__file__).read_bytes()

# name: (code, expected statuses, needs namespaces). The code is formatted
# with {mark}, {sentinel} (a file outside the sandbox, under /tmp), {port}
# (a port the test process listens on) and {repo_file} (this file).
PROGRAMS = {
    'hello': ('print(sum(range(10)))', {'ok'}, False),
    'syntax_error': ('def f(:\n  pass', {'error'}, False),
    'exception': ('1 / 0', {'error'}, False),
    'exit_code': ('import sys; sys.exit(3)', {'error'}, False),
    'stdin_eof': ('input()', {'error'}, False),
    'infinite_loop': ('while True:\n  pass', {'timeout'}, False),
    'sleep_past_timeout': ('import time; time.sleep(60)', {'timeout'}, False),
    'ignore_sigterm': ('import signal, time\n'
                       'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
                       'time.sleep(60)', {'timeout'}, False),
    'memory_bomb': ('x = bytearray(10**10)', {'memory'}, False),
    'memory_growth': ('x = []\nwhile True:\n  x.append(bytearray(2**20))',
                      {'memory'}, False),
    'huge_stdout': ('while True:\n  print("x" * 10000)', {'output_limit'},
                    False),
    'huge_stderr': ('import sys\nwhile True:\n  sys.stderr.write("y" * 9999)',
                    {'output_limit'}, False),
    'binary_output': ('import sys; sys.stdout.buffer.write(bytes(range(256)))',
                      {'ok'}, False),
    'segfault_ctypes': ('import ctypes; ctypes.string_at(0)', {'killed'},
                        False),
    'abort': ('import os; os.abort()', {'killed'}, False),
    'kill_self': ('import os, signal; os.kill(os.getpid(), signal.SIGKILL)',
                  {'killed'}, False),
    'close_stdout': ('import os, time\nos.close(1)\nos.close(2)\n'
                     'time.sleep(0.2)\nprint("gone")', {'error'}, False),
    'raise_limits': ('import resource\n'
                     'resource.setrlimit(resource.RLIMIT_AS, (-1, -1))',
                     {'error'}, False),
    'fork_bomb': ('import os\nwhile True:\n  try:\n    os.fork()\n'
                  '  except OSError:\n    pass', {'timeout', 'killed'}, True),
    'count_processes': ('import os, time\nn = 0\nfor _ in range(1000):\n'
                        '  try:\n    pid = os.fork()\n  except OSError:\n'
                        '    break\n  if pid == 0:\n    time.sleep(30)\n'
                        '    os._exit(0)\n  n += 1\nprint(n)', {'ok', 'killed'}, True),
    'daemon': ('import os, sys\nif os.fork() == 0:\n  os.setsid()\n'
               '  if os.fork() == 0:\n'
               '    os.execv(sys.executable, [sys.executable, "-c", '
               '"import time; time.sleep(60)", "{mark}"])\n'
               '  os._exit(0)\nprint("parent done")', {'ok'}, False),
    'orphan_holds_stdout': ('import os, time\nif os.fork() == 0:\n'
                            '  time.sleep(60)\nprint("bye")', {'ok'}, False),
    'write_outside': ('open({sentinel!r}, "w").write("pwned")', {'error'},
                      True),
    'create_outside': ('open({sentinel!r} + ".new", "w").write("pwned")',
                       {'error'}, True),
    'delete_outside': ('import os; os.remove({sentinel!r})', {'error'}, True),
    'rmtree_outside': ('import shutil, os\n'
                       'shutil.rmtree(os.path.dirname({sentinel!r}))',
                       {'error'}, True),
    'remount_rw': ('import subprocess\nr = subprocess.run(["sh", "-c", '
                   '"mount -o remount,rw / ; unshare -rm sh -c \\"mount -o '
                   'remount,rw /; echo x >> {repo_file}\\""])\n'
                   'open({repo_file!r}, "a").write("pwned")', {'error'}, True),
    'nested_namespace': ('import ctypes\n'
                         'libc = ctypes.CDLL(None, use_errno=True)\n'
                         'CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x20000\n'
                         'assert libc.unshare(CLONE_NEWUSER | CLONE_NEWNS)'
                         ' != 0, "made a user namespace"', {'ok'}, True),
    'write_repo': ('open({repo_file!r}, "a").write("pwned")', {'error'},
                   True),
    'delete_repo': ('import os; os.remove({repo_file!r})', {'error'}, True),
    'see_outside': ('import os\nprint(os.path.exists({sentinel!r}), '
                    'os.listdir("/tmp"))', {'ok'}, True),
    'ptrace_init': ('import ctypes\n'
                    'libc = ctypes.CDLL(None, use_errno=True)\n'
                    'assert libc.ptrace(16, 1, 0, 0) != 0, "attached"\n'
                    'open("/proc/1/mem", "rb").read(1)', {'error'}, True),
    'symlink_out': ('import os\nos.symlink({repo_file!r}, "link")\n'
                    'os.chmod(".", 0)\nopen("link", "a").write("pwned")',
                    {'error'}, True),
    'read_environment': (textwrap.dedent('''\
        import os
        found = [k for k, v in os.environ.items() if "hunter2" in v]
        for pid in os.listdir("/proc"):
          try:
            if b"hunter2" in open(f"/proc/{{pid}}/environ", "rb").read():
              found.append(pid)
          except OSError:
            pass
        print("found", found, sorted(os.environ))'''), {'ok'}, True),
    'socket_internet': ('import socket\n'
                        'socket.create_connection(("1.1.1.1", 53), timeout=1)',
                        {'error'}, True),
    'socket_host_loopback': ('import socket, sys\n'
                             'socket.create_connection(("127.0.0.1", '
                             '{port}), timeout=1)', {'error'}, True),
    'kill_parent': ('import os, signal\nos.kill(os.getppid(), signal.SIGKILL)'
                    '\nprint("still here")', {'ok'}, True),
    'kill_everything': ('import os, signal, time\n'
                        'assert os.getpid() < 100, "not in a pid namespace"\n'
                        'if os.fork() == 0:\n  time.sleep(60)\n'
                        'os.kill(-1, signal.SIGKILL)\nprint("survived")',
                        {'ok'}, True),
    'threads': ('import threading, time\nts = []\nfor _ in range(5000):\n'
                '  t = threading.Thread(target=time.sleep, args=(5,))\n'
                '  t.start()\n  ts.append(t)', {'error', 'timeout'}, True),
}


def _isolated():
  return sandbox.detect_isolation() in ('unshare', 'bubblewrap')


def _processes_with(marker: str) -> list[int]:
  found = []
  for pid in os.listdir('/proc'):
    if not pid.isdigit():
      continue
    try:
      cmdline = pathlib.Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError:
      continue
    if marker.encode() in cmdline and int(pid) != os.getpid():
      found.append(int(pid))
  return found


@pytest.fixture(scope='module')
def outside(tmp_path_factory):
  """A directory outside the sandbox with a sentinel file and a listener."""
  import socket  # pylint: disable=g-import-not-at-top
  d = tmp_path_factory.mktemp('outside')
  sentinel = d / 'sentinel.txt'
  sentinel.write_text('untouched')
  listener = socket.socket()
  listener.bind(('127.0.0.1', 0))
  listener.listen(8)
  listener.setblocking(False)
  yield d, sentinel, listener
  listener.close()


@pytest.fixture(scope='module')
def results(outside):
  d, sentinel, listener = outside
  os.environ['JAXREASON_SANDBOX_SECRET'] = SECRET
  before = sorted(p.name for p in d.iterdir())
  names = [n for n, (_, _, iso) in PROGRAMS.items()
           if not iso or _isolated()]

  def one(name):
    code = PROGRAMS[name][0].format(
        mark=MARK, sentinel=str(sentinel), port=listener.getsockname()[1],
        repo_file=__file__)
    # Programs that end by themselves get time to spare on a loaded machine.
    timeout_s = TIMEOUT_S if 'timeout' in PROGRAMS[name][1] else SLACK_S
    return run_python(code, timeout_s=timeout_s, memory_mb=256,
                      max_output_bytes=4096, max_procs=32)

  try:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
      out = dict(zip(names, pool.map(one, names)))
  finally:
    del os.environ['JAXREASON_SANDBOX_SECRET']
  yield out
  # Nothing outside changed (the test of each program checks its own bit).
  assert sorted(p.name for p in d.iterdir()) == before


@pytest.mark.parametrize('name', list(PROGRAMS))
def test_program_gets_a_clear_status(name, results):
  if name not in results:
    pytest.skip(f'{name} needs namespaces; isolation here is '
                f'{sandbox.detect_isolation()}')
  r = results[name]
  assert isinstance(r, SandboxResult)
  assert r.status in PROGRAMS[name][1], (name, r)
  assert r.wall_s < SLACK_S, (name, r.wall_s)


def test_outputs_and_exit_codes(results):
  assert results['hello'].stdout == '45\n' and results['hello'].exit_code == 0
  assert 'SyntaxError' in results['syntax_error'].stderr
  assert results['exception'].stderr.startswith(
      'Traceback (most recent call last):\n  File "main.py", line 1'), (
          results['exception'].stderr)
  assert 'ZeroDivisionError' in results['exception'].stderr
  assert results['exit_code'].exit_code == 3
  assert results['memory_bomb'].stderr.strip().endswith('MemoryError')
  assert results['segfault_ctypes'].exit_code == -signal.SIGSEGV
  assert results['abort'].exit_code == -signal.SIGABRT
  assert results['kill_self'].exit_code == -signal.SIGKILL
  assert results['daemon'].stdout == 'parent done\n'
  assert results['orphan_holds_stdout'].stdout == 'bye\n'
  assert '\ufffd' in results['binary_output'].stdout


def test_huge_output_is_truncated_with_a_marker(results):
  for name, stream in [('huge_stdout', 'stdout'), ('huge_stderr', 'stderr')]:
    text = getattr(results[name], stream)
    marker = sandbox.TRUNCATED.format(4096)
    assert text.endswith(marker), text[-200:]
    assert len(text) == 4096 + len(marker)


def test_no_process_survives(results):
  assert results  # Every call has returned.
  assert _processes_with(MARK) == []


def test_caller_is_untouched(results, outside):
  _, sentinel, listener = outside
  assert sentinel.read_text() == 'untouched'
  assert pathlib.Path(__file__).read_bytes() == THIS_FILE
  if 'see_outside' in results:  # /tmp of the sandbox holds only its own dir.
    out = results['see_outside'].stdout
    assert out.startswith("False ['jaxreason-sandbox-"), out
  assert 'JAXREASON_SANDBOX_SECRET' not in os.environ  # Restored by fixture.
  if 'read_environment' in results:
    out = results['read_environment'].stdout
    assert out.startswith('found [] '), out
    assert 'JAXREASON' not in out
  if 'socket_host_loopback' in results:
    with pytest.raises(BlockingIOError):
      listener.accept()  # Nobody connected.


def test_process_limit_holds(results):
  if 'count_processes' not in results:
    pytest.skip('RLIMIT_NPROC is per uid without a user namespace')
  r = results['count_processes']
  if r.status == 'killed':  # Real uid 0: the init's watchdog stopped it.
    assert 'more than 32 processes' in r.stderr, r
  else:  # RLIMIT_NPROC made fork fail.
    n = int(r.stdout)
    assert 0 < n < 32, n


def test_concurrent_calls_keep_their_own_output():
  codes = [f'import os\nprint({i}, os.getcwd())' for i in range(8)]
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    rs = list(pool.map(lambda c: run_python(c, timeout_s=10), codes))
  cwds = set()
  for i, r in enumerate(rs):
    assert r.status == 'ok', r
    index, cwd = r.stdout.split()
    assert int(index) == i
    cwds.add(cwd)
  assert len(cwds) == 8  # A fresh directory each ...
  assert not any(os.path.exists(c) for c in cwds)  # ... removed afterwards.


def test_work_directory_is_fresh_and_writable():
  r1 = run_python('open("left.txt", "w").write("x"); import os\n'
                  'print(sorted(os.listdir(".")))', timeout_s=10)
  r2 = run_python('import os; print(sorted(os.listdir(".")))', timeout_s=10)
  assert r1.stdout == "['left.txt', 'main.py']\n", r1
  assert r2.stdout == "['main.py']\n", r2


def test_disk_limit():
  r = run_python('open("big", "wb").write(b"0" * (8 << 20))', timeout_s=10,
                 disk_mb=4)
  assert r.status == 'error' and 'OSError' in r.stderr, r


@pytest.mark.parametrize('name', ['hello', 'infinite_loop', 'memory_bomb',
                                  'huge_stdout', 'syntax_error', 'daemon',
                                  'kill_self'])
def test_rlimit_fallback(name):
  code = PROGRAMS[name][0].format(mark=MARK + 'rl', sentinel='', port=0,
                                  repo_file='')
  os.environ['JAXREASON_SANDBOX_SECRET'] = SECRET
  try:
    r = run_python(code + '\nimport os\nassert "JAXREASON_SANDBOX_SECRET" '
                   'not in os.environ', timeout_s=TIMEOUT_S, memory_mb=256,
                   max_output_bytes=4096, isolation='rlimit')
  finally:
    del os.environ['JAXREASON_SANDBOX_SECRET']
  assert r.isolation == 'rlimit'
  assert r.status in PROGRAMS[name][1], r
  deadline = time.monotonic() + 2
  while _processes_with(MARK + 'rl') and time.monotonic() < deadline:
    time.sleep(0.05)  # A SIGKILLed process may take a moment to vanish.
  assert _processes_with(MARK + 'rl') == []


def test_bad_arguments_name_the_argument(monkeypatch):
  def no_dirs(*args, **kwargs):
    raise AssertionError('bad arguments made a temporary directory')
  monkeypatch.setattr(sandbox.tempfile, 'mkdtemp', no_dirs)
  with pytest.raises(TypeError, match='code must be str'):
    run_python(b'print(1)', timeout_s=1)
  with pytest.raises(ValueError, match='timeout_s'):
    run_python('print(1)', timeout_s=0)
  with pytest.raises(ValueError, match='memory_mb'):
    run_python('print(1)', timeout_s=1, memory_mb=-5)
  with pytest.raises(ValueError, match="isolation='chroot'"):
    run_python('print(1)', timeout_s=1, isolation='chroot')


def test_bubblewrap_command_isolates():
  argv = sandbox._prefix('bubblewrap', '/w')  # pylint: disable=protected-access
  assert argv[0].endswith('bwrap')
  for flag in ['--unshare-all', '--die-with-parent', '--new-session']:
    assert flag in argv
  i = argv.index('--ro-bind')
  assert argv[i + 1:i + 3] == ['/', '/']
  assert argv[argv.index('--cap-drop') + 1] == 'ALL'
  assert sys.executable not in argv  # The init command follows the prefix.


@pytest.mark.parametrize('code, status, needle', [
    ('', 'ok', ''),
    ('print("\\ud800")', 'error', 'UnicodeEncodeError'),  # Printed surrogate.
    ('x = "\ud800"', 'error', 'SyntaxError'),  # A lone surrogate in source.
    ('print(1)\x00', 'error', 'SyntaxError'),
    ('print("é ✓")', 'ok', ''),
])
def test_odd_source_text_never_raises(code, status, needle):
  r = run_python(code, timeout_s=SLACK_S)
  assert r.status == status, r
  assert needle in r.stderr, r
  if code.startswith('print("é'):
    assert r.stdout == 'é ✓\n'


def test_large_program():
  code = 'x = 0\n' + 'x += 1\n' * 200_000 + 'print(x)'  # ~1.4 MB of source.
  r = run_python(code, timeout_s=SLACK_S, memory_mb=1024)
  assert (r.status, r.stdout) == ('ok', '200000\n'), r


def test_cleanup_removes_the_work_dir_and_follows_no_link(tmp_path):
  target = tmp_path / 'target.txt'
  target.write_text('keep')
  target.chmod(0o640)
  code = (f'import os\nos.symlink({str(target)!r}, "link")\n'
          'os.mkdir("d")\nopen("d/f", "w").write("x")\nos.chmod("d", 0)\n'
          'os.chmod(".", 0o500)\nprint(os.getcwd())')
  r = run_python(code, timeout_s=SLACK_S, isolation='rlimit')
  assert r.status == 'ok', r
  assert not os.path.exists(r.stdout.strip())
  assert target.read_text() == 'keep' and target.stat().st_mode & 0o777 == 0o640


def test_a_stuck_sandbox_cannot_block_the_caller(tmp_path, monkeypatch):
  # An init that never reads the program: writing 1 MB of source must not
  # block past the deadline.
  stuck = tmp_path / 'stuck_init.py'
  stuck.write_text('import time\ntime.sleep(30)\n')
  monkeypatch.setattr(sandbox, 'INIT', stuck)
  t = time.monotonic()
  r = run_python('#' * (1 << 20), timeout_s=1, isolation='rlimit')
  assert r.status == 'timeout', r
  assert time.monotonic() - t < 10
