r"""Latency and throughput of the Python sandbox, against unisolated baselines.

  PYTHONPATH=. python tools/bench_sandbox.py \
      --output=benchmarks/sandbox/bench_sandbox.json

For each isolation level that works here ('unshare', 'bubblewrap' where
installed, and the 'rlimit' fallback) it times `--repeats` serial calls of
`run_python` on a hello-world program and on one that imports sympy (what
tool-integrated math reasoning runs), then `--calls` hello-world calls from
`--threads` threads. The baselines are what the peers do: a bare
`python -I -c` subprocess (Qwen2.5-Math's executor runs `exec` in a worker
process: the cost of that is one such process) and `exec` in this very
process (a JAX peer's tool), which isolates nothing. Medians in seconds; the
JSON also keeps the load average, since other processes on the machine slow
every figure.
"""

import concurrent.futures
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

from jaxreason.reasoning import sandbox

HELLO = 'print(sum(range(10)))'
SYMPY = 'import sympy\nprint(sympy.factorint(2**32 + 1))'

_OUTPUT = flags.DEFINE_string('output', None, 'Write the JSON here too.')
_REPEATS = flags.DEFINE_integer('repeats', 10, 'Serial calls per case.')
_CALLS = flags.DEFINE_integer('calls', 32, 'Calls in the concurrent case.')
_THREADS = flags.DEFINE_integer('threads', 8, 'Threads of the concurrent case.')


def _median_s(fn, repeats):
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def _sandboxed(code, level):
  def call():
    r = sandbox.run_python(code, timeout_s=60, memory_mb=1024, isolation=level)
    assert r.status == 'ok', r
  return call


def _bare_process(code):
  def call():
    subprocess.run([sys.executable, '-I', '-c', code], check=True,
                   capture_output=True)
  return call


def _in_process(code):
  def call():
    exec(compile(code, '<bench>', 'exec'), {})  # pylint: disable=exec-used
  return call


def run_bench(repeats: int, calls: int, threads: int) -> dict:
  """Times every case; returns the results as a dict (see the module doc)."""
  levels = [sandbox.detect_isolation()]
  if levels[0] != 'rlimit':
    levels.append('rlimit')
  rows = {}
  for level in levels:
    rows[level] = {
        'hello_s': _median_s(_sandboxed(HELLO, level), repeats),
        'sympy_s': _median_s(_sandboxed(SYMPY, level), repeats),
    }
    pool = concurrent.futures.ThreadPoolExecutor(threads)
    t = time.perf_counter()
    results = list(pool.map(lambda _: sandbox.run_python(
        HELLO, timeout_s=60, isolation=level), range(calls)))
    wall = time.perf_counter() - t
    pool.shutdown()
    assert all(r.status == 'ok' for r in results), results
    rows[level]['concurrent_calls_per_s'] = calls / wall
  rows['bare_process'] = {
      'hello_s': _median_s(_bare_process(HELLO), repeats),
      'sympy_s': _median_s(_bare_process(SYMPY), repeats)}
  with_sympy = _in_process(SYMPY)
  with_sympy()  # The import is cached after the first call, as in a trainer.
  rows['in_process_exec'] = {
      'hello_s': _median_s(_in_process(HELLO), repeats),
      'sympy_s': _median_s(with_sympy, repeats)}
  return {
      'tool': 'tools/bench_sandbox.py',
      'note': 'medians of serial calls; the machine is shared, see loadavg',
      'machine': {'cpu_count': os.cpu_count(), 'loadavg': os.getloadavg(),
                  'python': platform.python_version(),
                  'kernel': platform.release()},
      'flags': {'repeats': repeats, 'calls': calls, 'threads': threads},
      'detected_isolation': levels[0],
      'results': rows,
  }


def main(argv):
  del argv
  out = run_bench(_REPEATS.value, _CALLS.value, _THREADS.value)
  text = json.dumps(out, indent=2)
  print(text)
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(_OUTPUT.value) or '.', exist_ok=True)
    with open(_OUTPUT.value, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  app.run(main)
