"""The package graph points one way: a package imports only packages below it.

  sharding, losses, config_defaults, file_modules  (no jaxreason imports)
  < models < data < rewards < train < sampling < rl, imitation, verifiers
  < search < evals < recipes < generate
  (< experiments/, tools/, which nothing imports)

A new upward import (e.g. `jaxreason.train` importing `jaxreason.sampling`),
an import of jaxreason hidden inside a function, or a cycle between modules
of one package fails here with the offending file and line.
"""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'jaxreason'

# Rank of each top-level package or module of jaxreason; an import must go
# to the same package or to one of strictly lower rank.
RANKS = {
    'sharding': 0, 'losses': 0, 'config_defaults': 0, 'file_modules': 0,
    'models': 1,
    'data': 2,
    'rewards': 3,
    'train': 4,
    'sampling': 5,
    'rl': 6, 'imitation': 6, 'verifiers': 6, 'reasoning': 6, 'prover': 6,
    'search': 7,
    'evals': 8,
    'recipes': 9,
    'generate': 10,
}


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix('').parts)
  if parts[-1] == '__init__':
    parts = parts[:-1]
  return '.'.join(parts)


def _imports(path: pathlib.Path):
  """(imported jaxreason module, line, inside a function?) of one file."""
  tree = ast.parse(path.read_text(), str(path))
  module = _module_name(path)
  is_package = path.name == '__init__.py'
  functions = [n for n in ast.walk(tree)
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
  nested = {id(n) for f in functions for n in ast.walk(f)}
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = module.split('.')[:len(module.split('.')) - node.level +
                                 is_package]
        target = '.'.join(base + ([node.module] if node.module else []))
      else:
        target = node.module or ''
      names = [target] + [f'{target}.{a.name}' for a in node.names]
    for name in names:
      if name == 'jaxreason' or name.startswith('jaxreason.'):
        yield name, node.lineno, id(node) in nested


def _files():
  return sorted(PACKAGE.rglob('*.py'))


def _top(module: str) -> str:
  parts = module.split('.')
  return parts[1] if len(parts) > 1 else ''


def test_every_package_has_a_rank():
  tops = {_top(_module_name(p)) for p in _files()} - {''}
  assert tops <= set(RANKS), f'give these a rank in RANKS: {tops - set(RANKS)}'


@pytest.mark.parametrize('path', _files(), ids=lambda p: str(
    p.relative_to(ROOT)))
def test_imports_point_down(path):
  src = _top(_module_name(path))
  problems = []
  for name, line, hidden in _imports(path):
    dst = _top(name)
    where = f'{path.relative_to(ROOT)}:{line} imports {name}'
    if hidden:
      problems.append(f'{where} inside a function (import at the top)')
    if not dst or dst == src or src == '':
      continue
    if dst not in RANKS:
      continue  # An attribute import such as `from jaxreason import x`.
    if RANKS[dst] >= RANKS[src]:
      problems.append(f'{where}: {src} (rank {RANKS[src]}) may only import '
                      f'packages below it, not {dst} (rank {RANKS[dst]})')
  assert not problems, '\n'.join(problems)


def test_no_cycles_between_modules():
  known = {_module_name(p) for p in _files()}
  graph = {}
  for path in _files():
    deps = set()
    for name, _, _ in _imports(path):
      # `from pkg import mod` names the module pkg.mod; keep what exists.
      while name and name not in known:
        name = name.rpartition('.')[0]
      if name and name != _module_name(path):
        deps.add(name)
    graph[_module_name(path)] = deps
  # A package's __init__ importing its own modules is not a cycle of theirs.
  for name, deps in graph.items():
    graph[name] = {d for d in deps if not name.startswith(d + '.')}
  state, cycle = {}, []

  def visit(node, stack):
    state[node] = 'open'
    for dep in sorted(graph.get(node, ())):
      if state.get(dep) == 'open':
        cycle.extend(stack[stack.index(dep):] + [dep] if dep in stack
                     else [node, dep])
        return True
      if dep not in state and visit(dep, stack + [dep]):
        return True
    state[node] = 'done'
    return False

  for node in sorted(graph):
    if node not in state and visit(node, [node]):
      break
  assert not cycle, 'import cycle: ' + ' -> '.join(cycle)


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
  """The rule fails on a planted upward import (train -> sampling)."""
  fake = tmp_path / 'jaxreason' / 'train'
  fake.mkdir(parents=True)
  bad = fake / 'bad.py'
  bad.write_text('from jaxreason.sampling import Sampler\n'
                 'def f():\n  from jaxreason.models import hf\n')
  monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
  found = list(_imports(bad))
  assert [(n, hidden) for n, _, hidden in found] == [
      ('jaxreason.sampling', False), ('jaxreason.sampling.Sampler', False),
      ('jaxreason.models', True), ('jaxreason.models.hf', True)]
  with pytest.raises(AssertionError, match='may only import packages below'):
    test_imports_point_down(bad)
