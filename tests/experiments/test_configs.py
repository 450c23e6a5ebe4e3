"""Every config under configs/ runs two steps in its ':debug' variant."""

import importlib
import json
import pathlib

import pytest

from jaxreason.file_modules import load_config

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / 'configs').glob('*/*.py')
                 if p.name != '__init__.py')


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: f'{p.parent.name}/{p.name}')
def test_config_runs_two_debug_steps(path, tmp_path):
  config = load_config(path, 'debug')
  recipe = importlib.import_module(f'jaxreason.recipes.{path.parent.name}')
  result = recipe.train(config, str(tmp_path))
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').open()]
  assert [r['step'] for r in rows] == [1, 2]
  assert all(abs(r['loss']) < 1e6 for r in rows)
  assert result['final_metrics']['loss'] == pytest.approx(rows[-1]['loss'])
