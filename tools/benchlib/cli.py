"""What every tools/bench_*.py shares: flags from argv, JSON out, the report."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Sequence

from absl import app
from absl import flags


def parse(argv: Sequence[str], fv: flags.FlagValues | None,
          define: Callable[[flags.FlagValues], None]) -> flags.FlagValues:
  """`fv` as given, or new flags defined by `define` and parsed from argv.

  argv starts with the program name; unknown flags and positional
  arguments raise app.UsageError (a test can call `main([...])` directly).
  """
  if fv is None:
    fv = flags.FlagValues()
    define(fv)
    try:
      argv = fv(list(argv))
    except flags.Error as e:
      raise app.UsageError(str(e)) from None
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  return fv


def write_json(path: str, results: dict[str, Any]) -> None:
  """Writes results atomically (temporary file, then rename)."""
  if os.path.dirname(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as fp:
    json.dump(results, fp, indent=1, default=str)
  os.replace(tmp, path)


def finish(path: str, results: dict[str, Any],
           write: Callable[[str, dict[str, Any]], None],
           report: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
  """Records the end load, writes the JSON, prints the report."""
  results['machine']['load_average_end'] = os.getloadavg()
  write(path, results)
  print(report(results))
  print(f'wrote {path}')
  return results
