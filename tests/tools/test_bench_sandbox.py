"""tools/bench_sandbox.py: a tiny run gives positive times for every case."""

import pathlib

import pytest

from jaxreason.file_modules import load_file

REPO = pathlib.Path(__file__).resolve().parents[2]

bench = load_file(REPO / 'tools' / 'bench_sandbox.py')


@pytest.mark.slow  # ~5 s: sympy imported in every case.
def test_tiny_run_times_every_case():
  out = bench.run_bench(repeats=1, calls=2, threads=2)
  rows = out['results']
  assert out['detected_isolation'] in rows
  assert 'rlimit' in rows and 'bare_process' in rows
  for name, row in rows.items():
    assert row['hello_s'] > 0 and row['sympy_s'] > 0, (name, row)
  for level in ('rlimit', out['detected_isolation']):
    assert rows[level]['concurrent_calls_per_s'] > 0
  # exec in this process skips a process start: cheaper than any subprocess.
  assert rows['in_process_exec']['hello_s'] < rows['bare_process']['hello_s']
