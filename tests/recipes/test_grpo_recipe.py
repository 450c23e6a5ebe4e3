"""GRPO end to end on a toy task: the reward rises; bad configs are rejected."""

import json
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def reward_sevens(texts, records):
  """Toy verifiable reward: the share of '7' characters in the completion."""
  del records
  return np.asarray([t.count('7') / max(len(t), 1) for t in texts],
                    np.float32)


def reward_raises(texts, records):
  raise RuntimeError('broken reward')


def _config(**overrides):
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      'grpo_cfg', REPO / 'configs/grpo/synthetic.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config('debug')
  c.beta = 0.0
  c.num_iterations = 1
  c.eval_before = False
  c.data.num_eval = 0
  for k, v in overrides.items():
    c[k] = v
  return c


@pytest.mark.slow
def test_reward_rises_on_toy_task(tmp_path):
  from jaxreason.recipes import grpo  # pylint: disable=g-import-not-at-top
  c = _config(prompts_per_step=4, group_size=8, max_new_tokens=8,
              temperature=1.0, checkpoint_every=100, log_every=1)
  c.total_steps = 30
  c.reward = dict(kind='python', fn='test_grpo_recipe:reward_sevens')
  c.optim.lr = 1e-2
  c.optim.warmup_steps = 0
  grpo.train(c, str(tmp_path))
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').open()]
  rewards = [r['reward'] for r in rows]
  first, last = np.mean(rewards[:5]), np.mean(rewards[-5:])
  assert last > first + 0.2, rewards


def test_raising_reward_counts_as_zero(tmp_path):
  from jaxreason.recipes import grpo  # pylint: disable=g-import-not-at-top
  c = _config()
  c.total_steps = 1
  c.reward = dict(kind='python', fn='test_grpo_recipe:reward_raises')
  result = grpo.train(c, str(tmp_path))
  assert result['final_metrics']['reward'] == 0.0


def test_group_size_must_divide_accumulation():
  from jaxreason.recipes import grpo  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match='grad_accum_steps=3'):
    grpo.check_config(_config(grad_accum_steps=3))
  with pytest.raises(ValueError, match='group_size=1'):
    grpo.check_config(_config(group_size=1))


def test_grpo_workdir_loads_as_a_policy(tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  from jaxreason.recipes import grpo  # pylint: disable=g-import-not-at-top
  from jaxreason.sampling.policy import load_policy  # pylint: disable=g-import-not-at-top
  from jaxreason.train import checkpoint  # pylint: disable=g-import-not-at-top
  c = _config()
  c.total_steps = 1
  grpo.train(c, str(tmp_path))
  cfg, params, tok = load_policy(str(tmp_path))
  assert cfg.embed_dim == c.model.embed_dim and tok.vocab_size == cfg.vocab_size
  saved = checkpoint.Checkpointer(str(tmp_path / 'checkpoints'))
  assert saved.latest_step() == 1
  expected = checkpoint.restore_params(str(tmp_path / 'checkpoints'))
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(
      np.asarray(a), np.asarray(b)), params, expected)
