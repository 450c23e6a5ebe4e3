"""Where benchmark data lives: an explicit path, $JAXREASON_DATA, or ../shared/data.

The benchmark files (MATH-500, AIME, AMC23, GSM8K, ProcessBench, miniF2F)
are read in place and never copied into the repository. Library code takes
the directory as an argument; entry points resolve it here, so one
environment variable points every config at another copy.
"""

from __future__ import annotations

import os
import pathlib

ENV_VAR = 'JAXREASON_DATA'
# Beside the checkout: <parent>/shared/data.
_DEFAULT = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data'


def data_dir(explicit: str | os.PathLike | None = None) -> pathlib.Path:
  """`explicit` if given (not empty), else $JAXREASON_DATA, else the default."""
  if explicit:
    return pathlib.Path(explicit)
  env = os.environ.get(ENV_VAR)
  return pathlib.Path(env) if env else _DEFAULT


def require(path: pathlib.Path, what: str) -> pathlib.Path:
  """`path` if it exists, else FileNotFoundError naming `what` and the fix."""
  if not path.exists():
    raise FileNotFoundError(
        f'{what}: {path} does not exist. Point --config.data_dir or '
        f'${ENV_VAR} at the benchmark data folder (see README, "Data").')
  return path
