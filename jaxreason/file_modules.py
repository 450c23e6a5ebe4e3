"""Importing a script or config file by path (tools/*.py, configs/*/*.py).

Config files and tools are not packages; experiments, tools and tests load
them with `load_file`, and configs with `load_config('path.py:arg')`.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
from types import ModuleType
from typing import Any


def load_file(path: str | os.PathLike) -> ModuleType:
  """The module defined by the Python file at `path` (not added to sys.modules)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'{path}: no such file')
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config(path: str | os.PathLike, arg: str = '') -> Any:
  """`get_config(arg)` of a config file, e.g. ('configs/aime/aime.py', 'v2')."""
  return load_file(path).get_config(arg)
