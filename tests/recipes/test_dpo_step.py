"""DPO on meshes equals one device (reference log-probs and step); seeds.

The reference log-probs are computed as the recipe does (`reference_logps`:
`make_seq_logps_fn` with the policy's param shardings, outputs on the
devices), the step is `make_train_step(dpo.make_loss_fn(...))` on the state
of `state_from_params`, with RPO's NLL term on and gradient accumulation 2.
"""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.data import pipeline, sources
from jaxreason.models.transformer import Transformer
from jaxreason.recipes import dpo
from jaxreason.recipes.grpo import load_policy_or_init
from jaxreason.rewards import task_rewards
from jaxreason.sharding.mesh import make_mesh
from jaxreason.train import optim
from jaxreason.train.state import state_from_params
from jaxreason.train.step import batch_sharding, make_train_step

REPO = pathlib.Path(__file__).resolve().parents[2]
MESHES = [(1, 8, 1), (2, 2, 2), (8, 1, 1)]
P, W = 8, 32


def _config():
  spec = importlib.util.spec_from_file_location(
      'dpo_cfg', REPO / 'configs/dpo/synthetic.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config('debug,rpo')
  c.data.num_eval = 0
  c.optim.update(lr=1e-2, warmup_steps=0)
  c.grad_accum_steps = 2
  return c


def _pairs(vocab, seed=0):
  rng = np.random.default_rng(seed)
  ids = lambda n: rng.integers(3, vocab, n).tolist()
  return [dpo.Pair(i, '', '', '', 0.0, ids(4 + i % 3), ids(5 + i),
                   ids(3 + (7 * i) % 5)) for i in range(P)]


def _run(mesh, steps=2):
  c = _config()
  model_cfg, params, _ = load_policy_or_init(c)
  init = lambda r: Transformer(model_cfg).init(
      r, jnp.zeros((1, 1), jnp.int32))['params']
  state, sh = state_from_params(
      params, init, lambda m: optim.make_optimizer(c.optim, m)[0], mesh)
  batch_sh = batch_sharding(mesh)
  arrays = dpo.pair_arrays(_pairs(model_cfg.vocab_size), W)
  ref = dpo.reference_logps(
      state.params, dpo.make_seq_logps_fn(model_cfg, sh.params, batch_sh),
      arrays['tokens'], arrays['mask'], chunk=P, batch_sh=batch_sh)
  # A reference away from the policy (which is the reference at step 0), so
  # that no chosen / rejected reward is a tie decided by rounding.
  arrays['ref_logps'] = ref + np.random.default_rng(1).normal(
      size=ref.shape).astype(np.float32)
  step = make_train_step(dpo.make_loss_fn(model_cfg, c), sh, mesh,
                         schedule=optim.make_schedule(c.optim),
                         grad_accum_steps=c.grad_accum_steps)
  metrics = []
  for s in range(steps):
    idx = pipeline.epoch_indices(s, P, P, c.seed)
    batch = jax.device_put({k: v[idx] for k, v in arrays.items()}, batch_sh)
    state, m = step(state, batch, jax.random.key(0))
    metrics.append(jax.device_get(m))
  return ref, state, metrics


@pytest.fixture(scope='module')
def single_device_run():
  return _run(make_mesh([('data', 1), ('fsdp', 1), ('tensor', 1)],
                        devices=jax.devices()[:1]))


@pytest.mark.parametrize('shape', MESHES)
def test_dpo_on_mesh_matches_single_device(shape, single_device_run):
  mesh = make_mesh(list(zip(('data', 'fsdp', 'tensor'), shape)))
  ref, state, metrics = _run(mesh)
  want_ref, want_state, want_metrics = single_device_run
  assert isinstance(ref, np.ndarray) and ref.shape == (P, 2)
  assert np.all(ref < 0)
  np.testing.assert_allclose(ref, want_ref, rtol=1e-5, atol=1e-4)
  assert 'nll_chosen' in metrics[0]
  for m, r in zip(metrics, want_metrics):
    assert set(m) == set(r)
    for k in r:
      np.testing.assert_allclose(m[k], r[k], atol=1e-5, rtol=1e-5, err_msg=k)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(
      np.asarray(x), np.asarray(y), atol=1e-5, rtol=0),
               state.params, want_state.params)


def test_reference_logps_wrap_and_match_unchunked(single_device_run):
  """Chunks that do not divide the pairs (the last wraps) give the same."""
  c = _config()
  model_cfg, params, _ = load_policy_or_init(c)
  mesh = make_mesh([('data', 2), ('fsdp', 1), ('tensor', 4)])
  arrays = dpo.pair_arrays(_pairs(model_cfg.vocab_size), W)
  param_sh = jax.tree.map(lambda _: jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec()), params)
  fn = dpo.make_seq_logps_fn(model_cfg, param_sh, batch_sharding(mesh))
  got = dpo.reference_logps(params, fn, arrays['tokens'], arrays['mask'],
                            chunk=6, batch_sh=batch_sharding(mesh))
  np.testing.assert_allclose(got, single_device_run[0], rtol=1e-5, atol=1e-4)


def test_seeds_give_different_pair_samples():
  """The pair builder's samples depend on the seed (DPO+RPO seeds 1, 2)."""
  c = _config()
  model_cfg, params, tok = load_policy_or_init(c)
  train, _ = sources.preference_records(c.data)
  recs = [r | {'_index': i} for i, r in enumerate(train[:8])]
  reward_fn = task_rewards.make_reward_fn(c.reward)
  rejected = {}
  for seed in (1, 2):
    pairs, _ = dpo.build_pairs(
        params, model_cfg, tok, recs, reward_fn,
        num_candidates=c.num_candidates, max_new_tokens=c.max_new_tokens,
        seed=seed, batch_prompts=c.sample_batch_prompts)
    assert pairs
    rejected[seed] = [p.rejected_ids for p in pairs]
  assert rejected[1] != rejected[2]


def test_seeds_give_different_pair_orders():
  a = [pipeline.epoch_indices(s, 32, 1975, 1) for s in range(70)]
  b = [pipeline.epoch_indices(s, 32, 1975, 2) for s in range(70)]
  assert not all(np.array_equal(x, y) for x, y in zip(a, b))
  # Each epoch is a permutation: every pair once per epoch, whatever seed.
  first_epoch = np.concatenate(a)[:1975]
  assert sorted(first_epoch.tolist()) == list(range(1975))
