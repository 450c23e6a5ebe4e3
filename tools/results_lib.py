"""What tools/results.py and tools/figures.py share: paths, provenance, the
`Result` record, running a command, loading and rerunning a figure, and
regenerating the README blocks. See tools/results.py for the commands."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time
from typing import Any, Callable

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH = REPO / 'benchmarks'
RUNS = REPO / 'runs' / 'results'
README = REPO / 'README.md'
PY = 'python'  # Shown in commands; run() executes sys.executable.
RUNS_REL = 'runs/results'


# Provenance -------------------------------------------------------------------


def _git(*args: str) -> str:
  try:
    return subprocess.run(['git', *args], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return ''


def machine() -> dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  cpu = ''
  if os.path.exists('/proc/cpuinfo'):
    with open('/proc/cpuinfo') as f:
      names = [l.split(':', 1)[1].strip() for l in f if
               l.startswith('model name')]
    cpu = names[0] if names else ''
  return {'cpu': cpu or platform.processor(), 'cpu_count': os.cpu_count(),
          'platform': platform.platform(), 'python': platform.python_version(),
          'jax': jax.__version__, 'backend': jax.default_backend(),
          'load_average': os.getloadavg()}


def provenance(command: list[str]) -> dict[str, Any]:
  return {'commit': _git('rev-parse', 'HEAD'),
          'dirty': bool(_git('status', '--porcelain', '--untracked-files=no')),
          'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec='seconds'),
          'machine': machine(),
          'command': ' '.join(command)}


def provenance_line(data: dict[str, Any], path: pathlib.Path) -> str:
  """One line under each generated table: where its numbers come from."""
  p = data.get('provenance')
  rel = path.relative_to(REPO)
  if not p:
    commit = _git('log', '-1', '--format=%h', '--', str(rel)) or 'unknown'
    return (f'<sub>`{rel}`: written by the bench tool itself, not through '
            f'tools/results.py (no provenance stamp); the '
            f'file was recorded in commit {commit}.</sub>')
  dirty = ' (+ uncommitted changes)' if p.get('dirty') else ''
  m = p.get('machine', {})
  return (f"<sub>`{rel}`: commit {p['commit'][:7]}{dirty}, {p['date'][:10]}, "
          f"{m.get('cpu', '?')} x{m.get('cpu_count', '?')}, jax "
          f"{m.get('jax', '?')} ({m.get('backend', '?')}); "
          f"`{p['command']}`</sub>")


def write_json(path: pathlib.Path, data: dict[str, Any]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix('.json.tmp')
  tmp.write_text(json.dumps(data, indent=1, default=str) + '\n')
  os.replace(tmp, path)


def run(command: list[str]) -> None:
  print('$', ' '.join(command), flush=True)
  env = dict(os.environ, PYTHONPATH=str(REPO))
  argv = [sys.executable if a == PY else a for a in command]
  subprocess.run(argv, cwd=REPO, env=env, check=True)


@dataclasses.dataclass(frozen=True)
class Result:
  """One README figure: how to measure it and how to show it."""

  name: str
  json: str  # Under benchmarks/.
  command: list[str]  # Shown in --list and the provenance line.
  measure: Callable[['Result'], dict[str, Any]]
  render: Callable[[dict[str, Any]], str]
  workdirs: tuple[str, ...] = ()  # Deleted by --fresh.
  # The bench tools' own JSON files (under benchmarks/) this figure reads
  # until it is rerun through this tool; several are read as a list.
  legacy: tuple[str, ...] = ()

  @property
  def path(self) -> pathlib.Path:
    return BENCH / self.json


def measure_tool_json(r: Result) -> dict[str, Any]:
  """Tools that write their own JSON (r.legacy[0]); it becomes the result."""
  run(r.command)
  with open(BENCH / r.legacy[0]) as f:
    return json.load(f)


def multi_tool(paths: list[str], commands: list[list[str]]):
  def measure(r: Result) -> dict[str, Any]:
    del r
    out = []
    for path, command in zip(paths, commands):
      run(command)
      with open(BENCH / path) as f:
        out.append(json.load(f))
    return out
  return measure


# Loading results written before this tool (the bench tools' own JSON) --------


def load(r: Result) -> dict[str, Any] | None:
  """{'result', 'provenance'?, 'source'} of a figure, or None if unmeasured.

  The figure's own file if it was rerun through this tool, else the bench
  tools' JSON it was measured with before (no provenance).
  """
  if r.path.exists():
    with open(r.path) as f:
      return {**json.load(f), 'source': r.path}
  paths = [BENCH / p for p in r.legacy]
  if not paths or not all(p.exists() for p in paths):
    return None
  parts = [json.loads(p.read_text()) for p in paths]
  return {'result': parts if len(parts) > 1 else parts[0],
          'source': paths[0]}


def rerun(r: Result, fresh: bool = False) -> None:
  """Measures `r` (its workdirs deleted first if `fresh`), writes its JSON."""
  if fresh:
    for w in r.workdirs:
      shutil.rmtree(RUNS / w, ignore_errors=True)
  RUNS.mkdir(parents=True, exist_ok=True)
  start = time.time()
  stamp = provenance(r.command)  # The code as it was when the run started.
  result = r.measure(r)
  write_json(r.path, {'name': r.name, 'provenance': stamp,
                      'seconds': time.time() - start, 'result': result})
  print(f'wrote {r.path}')


def render_readme(text: str, results: dict[str, Result]) -> tuple[str, list[str]]:
  """README text with every results block regenerated; names updated."""
  updated = []
  for r in results.values():
    begin = (f'<!-- results:{r.name} begin: generated by tools/results.py; '
             'do not edit -->')
    end = f'<!-- results:{r.name} end -->'
    if begin not in text:
      continue
    data = load(r)
    if data is None:
      body = (f'(not measured yet: `python tools/results.py '
              f'--only={r.name}`)')
    else:
      body = (r.render(data) + '\n\n' +
              provenance_line(data, data['source']))
    i, j = text.index(begin) + len(begin), text.index(end)
    text = text[:i] + '\n' + body + '\n' + text[j:]
    updated.append(r.name)
  return text, updated
