"""SFT additions: init_workdir, a saved data filter, generated teacher traces."""

import importlib.util
import json
import pathlib

import jax
import numpy as np
import pytest

from jaxreason.data import sources, synthetic
from jaxreason.models.transformer import init_params
from jaxreason.recipes import sft
from jaxreason.train import run_config
from jaxreason.train.checkpoint import Checkpointer

REPO = pathlib.Path(__file__).resolve().parents[2]


def _config(name, arg='debug'):
  spec = importlib.util.spec_from_file_location(
      name, REPO / 'configs' / 'sft' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_params_from_workdir_restores_the_saved_params(tmp_path):
  c = _config('light_r1', 'stage1,debug')
  tok = run_config.tokenizer_from_config(c.tokenizer)
  model_cfg = run_config.model_config_from(c.model, tok.vocab_size)
  params = init_params(model_cfg, jax.random.key(7))
  run_config.save_run_config(str(tmp_path), c, tok)
  ckpt = Checkpointer(str(tmp_path / 'checkpoints'), async_save=False)
  ckpt.save(5, {'step': np.int32(5), 'params': params}, force=True)
  ckpt.close()
  got = sft.params_from_workdir(str(tmp_path), model_cfg)
  jax.tree.map(np.testing.assert_array_equal, got, params)
  with pytest.raises(ValueError, match='does not have the parameters'):
    sft.params_from_workdir(str(tmp_path), model_cfg.replace(mlp_dim=128))


def test_saved_filter_is_reused_without_sampling(tmp_path):
  c = _config('light_r1')  # 'debug' alone: stage 2 with a pass-rate filter.
  assert c.data.filter.kind == 'pass_rate' and not c.init_workdir
  records = [{'prompt': f'p{i}'} for i in range(5)]
  (tmp_path / sft.FILTER_FILE).write_text(json.dumps(
      {'num_records': 5, 'kept': [1, 3], 'pass_rates': [0.0] * 5}))
  kept = sft.filter_train_records(c, records, None, str(tmp_path))
  assert kept == [records[1], records[3]]
  c.data.filter.kind = ''  # Off: every record, whatever the workdir holds.
  assert sft.filter_train_records(c, records, None, str(tmp_path)) == records


def test_distill_debug_generates_checkable_traces(tmp_path):
  c = _config('distill')
  assert c.data.path == ''
  resolved = sft.with_generated_data(c, str(tmp_path))
  assert c.data.path == ''  # The caller's config is left alone.
  rows = sources.read_jsonl(resolved.data.path, ('prompt', 'completion',
                                                 'answer'))
  assert len(rows) == c.data.generate.num
  for row in rows:
    assert row['completion'].startswith('<think>\n')
    assert synthetic.extract_boxed(row['completion']) == row['answer']
  assert any('Wait, check it' in r['completion'] for r in rows)
  train, held_out = sources.sft_records(resolved.data)
  assert len(held_out) == c.data.num_eval and 'answer' in held_out[0]
  assert len(train) + len(held_out) == len(rows)
  # A configured path is used as it is; no path and nothing to generate fails.
  assert sft.with_generated_data(resolved, str(tmp_path)) is resolved
  c.data.generate.num = 0
  with pytest.raises(ValueError, match='data.path is empty'):
    sft.with_generated_data(c, str(tmp_path))
