"""Helpers shared by tests (tests/ is on sys.path through conftest.py)."""

import importlib.util
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_file(path):
  """Imports a script or config file (tools/*.py, configs/*/*.py) by path."""
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
