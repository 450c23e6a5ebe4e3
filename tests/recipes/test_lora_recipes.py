"""LoRA inside the recipes: SFT 'debug,lora' and GRPO 'debug,lora' end to end.

Checks what LoRA promises there: two steps run, the base is bit-for-bit the
initial weights afterwards (only the adapters trained), the GRPO reference
is the base (KL exactly 0 on the first step, where the adapted policy still
equals it), and the merged model comes back through `load_policy` and the
Hugging Face export.
"""

import importlib.util
import json
import os
import pathlib

import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxreason.models import hf, lora
from jaxreason.sampling import load_policy
from jaxreason.train import checkpoint, run_config

REPO = pathlib.Path(__file__).resolve().parents[2]


def reward_distinct(texts, records):
  """Varies between random samples (the synthetic reward of a random policy
  is all zeros, which would leave every advantage and gradient zero)."""
  del records
  return np.asarray([len(set(t)) / 8 for t in texts], np.float32)


def _config(recipe, arg):
  spec = importlib.util.spec_from_file_location(
      f'{recipe}_cfg', REPO / f'configs/{recipe}/synthetic.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _rows(workdir):
  return [json.loads(l) for l in (workdir / 'metrics.jsonl').open()]


def _saved_params(workdir):
  return jax.device_get(checkpoint.restore_params(
      os.path.join(workdir, 'checkpoints')))


def _assert_merged_equal(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6),
               a, b)


def test_grpo_debug_lora(tmp_path):
  from jaxreason.recipes import grpo  # pylint: disable=g-import-not-at-top
  c = _config('grpo', 'debug,lora')
  assert c.lora.rank == 8 and c.beta > 0  # The reference is exercised.
  c.eval_before = False
  c.data.num_eval = 0
  c.num_iterations = 1  # So that step 1's metrics are those of B = 0.
  c.reward = dict(kind='python', fn='test_lora_recipes:reward_distinct')
  c.optim.update(warmup_steps=0, lr=0.05)  # Step 1 moves the adapters.
  c.export_hf = str(tmp_path / 'hf')
  result = grpo.train(c, str(tmp_path))
  rows = _rows(tmp_path)
  assert [r['step'] for r in rows] == [1, 2]
  assert all(np.isfinite(r['loss']) for r in rows)
  assert result['final_metrics']['loss'] == pytest.approx(rows[-1]['loss'])
  # Step 1 sees B = 0: the adapted policy is the base, so its KL to the
  # reference is 0 if the reference is the base; on step 2 the adapters
  # have moved and the KL is positive (the reference is not the policy).
  assert rows[0]['kl'] == pytest.approx(0, abs=1e-6)
  assert rows[1]['kl'] > 0

  saved = _saved_params(tmp_path)
  assert set(saved) == {'base', 'lora'}
  model_cfg, initial, _ = grpo.load_policy_or_init(c)
  jax.tree.map(np.testing.assert_array_equal, saved['base'],
               jax.device_get(initial))
  assert all(np.any(b != 0) for _, b in
             lora.flat_adapters(saved['lora']).values())
  # The export is the merged policy.
  cfg, merged = hf.load_checkpoint(c.export_hf)
  assert cfg.num_layers == model_cfg.num_layers
  _assert_merged_equal(merged, lora.merge(saved, lora.config_from(c.lora)))


def test_sft_debug_lora_exports_merged_model(tmp_path):
  from jaxreason.recipes import sft  # pylint: disable=g-import-not-at-top
  c = _config('sft', 'debug,lora')
  assert c.lora.rank == 8 and c.lora.dropout > 0
  c.eval_max_new_tokens = 0
  c.export_hf = str(tmp_path / 'hf')
  workdir = tmp_path / 'run'
  result = sft.train(c, str(workdir))
  rows = _rows(workdir)
  assert [r['step'] for r in rows] == [1, 2]
  assert all(np.isfinite(r['loss']) for r in rows)
  assert result['export_hf'] == c.export_hf

  lora_cfg = lora.config_from(c.lora)
  model_cfg = run_config.model_config_from(
      c.model, run_config.tokenizer_from_config(c.tokenizer).vocab_size)
  saved = _saved_params(workdir)
  initial = nn.unbox(jax.jit(lambda r: lora.init_params(
      model_cfg, lora_cfg, r))(jax.random.PRNGKey(c.seed)))
  jax.tree.map(np.testing.assert_array_equal, saved['base'], initial['base'])
  changed = jax.tree.map(lambda x, y: bool(np.any(x != y)), saved['lora'],
                         initial['lora'])
  assert any(jax.tree.leaves(changed))
  expected = lora.merge(saved, lora_cfg)
  # The HF export and load_policy(workdir) are both the merged model.
  _, exported = hf.load_checkpoint(c.export_hf)
  _assert_merged_equal(exported, expected)
  _, from_workdir, _ = load_policy(str(workdir))
  _assert_merged_equal(from_workdir, expected)
  # And it is not the base: the adapters moved it.
  base_only = jax.tree.map(lambda x, y: np.abs(x - y).max(), expected,
                           saved['base'])
  assert max(jax.tree.leaves(base_only)) > 0


def test_lora_off_by_default():
  for recipe in ('sft', 'grpo'):
    c = _config(recipe, 'debug')
    assert lora.config_from(c.lora) is None
  with pytest.raises(ValueError, match='Unknown variant'):
    _config('sft', 'debug,lroa')
  # The default model has the layers the default targets name.
  c = _config('grpo', 'debug,lora')
  cfg = run_config.model_config_from(c.model, 64)
  assert len(lora.targeted_layers(cfg, lora.config_from(c.lora))) == (
      7 * cfg.num_layers)
