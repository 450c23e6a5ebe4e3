"""The sharded train step equals the single-device step; accumulation; masks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreason.losses.sft import sft_loss
from jaxreason.models import layout
from jaxreason.models.transformer import Transformer, TransformerConfig
from jaxreason.sharding.mesh import make_mesh
from jaxreason.train import optim
from jaxreason.train.state import ParamGroups, create_train_state
from jaxreason.train.state import state_from_params
from jaxreason.train.step import batch_sharding, make_train_step

CFG = TransformerConfig.from_preset('tiny')
OPTIM = dict(name='adamw', lr=1e-2, schedule='warmup_cosine', warmup_steps=1,
             total_steps=10, weight_decay=0.1, clip_norm=1.0)


def _batch(seed=0, b=8, t=16):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, CFG.vocab_size, (b, t)).astype(np.int32)
  seg = np.ones((b, t), np.int32)
  seg[:, t // 2:] = 2  # Two packed examples per row.
  seg[0, -3:] = 0  # Some padding.
  pos = np.concatenate([np.arange(t // 2)] * 2)[None].repeat(b, 0)
  mask = (rng.random((b, t)) > 0.3).astype(np.int32)
  return {'tokens': tokens, 'positions': pos.astype(np.int32),
          'segment_ids': seg, 'loss_mask': mask}


def _loss_fn(params, batch, rng, frozen, cfg=CFG):
  del rng, frozen
  logits = Transformer(cfg).apply({'params': params}, batch['tokens'],
                                  batch['positions'], batch['segment_ids'])
  return sft_loss(logits, batch['tokens'], batch['segment_ids'],
                  batch['loss_mask'])


def _run(mesh, steps=2, accum=1, trainable=None, scan=False):
  tx_factory = lambda m: optim.make_optimizer(OPTIM, m)[0]
  init = lambda r: Transformer(CFG).init(r, jnp.zeros((1, 1), jnp.int32))[
      'params']
  loss_fn = _loss_fn
  if scan:  # The same initial values, stacked (boxes get the 'layers' name).
    init = lambda r, f=init: layout.stack_layers(f(r))
    loss_fn = functools.partial(_loss_fn, cfg=CFG.replace(scan_layers=True))
  state, sh = create_train_state(init, tx_factory, jax.random.PRNGKey(0),
                                 mesh, trainable=trainable)
  step = make_train_step(loss_fn, sh, mesh, grad_accum_steps=accum,
                         schedule=optim.make_schedule(OPTIM))
  losses = []
  for i in range(steps):
    batch = jax.device_put(_batch(i), batch_sharding(mesh))
    state, metrics = step(state, batch, jax.random.PRNGKey(1))
    losses.append(float(metrics['loss']))
  return state, losses, metrics


@pytest.fixture(scope='module')
def single_device_run():
  mesh = make_mesh([('data', 1), ('fsdp', 1), ('tensor', 1)],
                   devices=jax.devices()[:1])
  return _run(mesh)


@pytest.mark.parametrize('shape', [(1, 8, 1), (2, 2, 2), (8, 1, 1)])
def test_mesh_matches_single_device(shape, single_device_run):
  assert jax.device_count() == 8
  mesh = make_mesh(list(zip(('data', 'fsdp', 'tensor'), shape)))
  state, losses, _ = _run(mesh)
  ref_state, ref_losses, _ = single_device_run
  np.testing.assert_allclose(losses, ref_losses, atol=1e-5, rtol=0)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(
          np.asarray(a), np.asarray(b), atol=1e-5, rtol=0),
      state.params, ref_state.params)
  # Parameters really are sharded where the mesh allows it.
  q = state.params['layers_0']['self_attn']['q_proj']['kernel']
  if shape[1] > 1:
    assert q.sharding.spec[0] == 'fsdp'
  if shape[2] > 1:
    assert q.sharding.spec[1] == 'tensor'


def test_scanned_layers_on_a_mesh_match_unrolled_single_device(
    single_device_run):
  """scan_layers on a 2x2x2 mesh = the unrolled model on one device."""
  mesh = make_mesh([('data', 2), ('fsdp', 2), ('tensor', 2)])
  state, losses, _ = _run(mesh, scan=True)
  ref_state, ref_losses, _ = single_device_run
  np.testing.assert_allclose(losses, ref_losses, atol=1e-5, rtol=0)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(
          np.asarray(a), np.asarray(b), atol=1e-5, rtol=0),
      layout.unstack_layers(state.params), ref_state.params)
  q = state.params['layers']['self_attn']['q_proj']['kernel']  # [L, D, H, Dh]
  assert q.shape[0] == CFG.num_layers
  assert tuple(q.sharding.spec)[:3] == (None, 'fsdp', 'tensor')


def test_metrics_are_flat_scalars(single_device_run):
  _, _, metrics = single_device_run
  for key in ('loss', 'grad_norm', 'param_norm', 'learning_rate', 'accuracy'):
    assert key in metrics and np.ndim(metrics[key]) == 0, key
  assert float(metrics['grad_norm']) > 0


def test_grad_accumulation_equals_full_batch():
  mesh = make_mesh([('data', 2), ('fsdp', 4), ('tensor', 1)])
  full, full_losses, _ = _run(mesh, steps=2, accum=1)
  acc, acc_losses, _ = _run(mesh, steps=2, accum=2)
  np.testing.assert_allclose(acc_losses, full_losses, atol=1e-6)
  # Params after two Adam steps: Adam divides by sqrt(v), so an entry with a
  # near-zero gradient amplifies float summation-order noise; 1e-5 as in the
  # mesh-equality tests above.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      np.asarray(a), np.asarray(b), atol=1e-5), acc.params, full.params)


def test_trainable_mask_freezes_params():
  mesh = make_mesh([('data', 1), ('fsdp', -1), ('tensor', 1)])
  only_mlp = lambda params: jax.tree_util.tree_map_with_path(
      lambda path, _: 'mlp' in jax.tree_util.keystr(path), params)
  init = Transformer(CFG).init(jax.random.PRNGKey(0),
                               jnp.zeros((1, 1), jnp.int32))['params']
  state, _, _ = _run(mesh, steps=2, trainable=only_mlp)
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  init = nn.unbox(init)
  flat_new = jax.tree_util.tree_flatten_with_path(state.params)[0]
  flat_old = jax.tree.leaves(init)
  changed = {jax.tree_util.keystr(p): not np.allclose(np.asarray(a), b)
             for (p, a), b in zip(flat_new, flat_old)}
  assert any(changed.values())
  for name, did_change in changed.items():
    assert did_change == ('mlp' in name), name


def test_group_grad_norms_of_a_summed_loss():
  """Groups with their own optimisers, one summed loss: each group's step
  and gradient norm are those of its own term."""
  mesh = make_mesh([('data', 1), ('fsdp', 1), ('tensor', 1)],
                   devices=jax.devices()[:1])
  params = {'a': jnp.array([1.0, -2.0]), 'b': jnp.array([0.5, 0.5, 0.5]),
            'c': jnp.array(7.0)}
  groups = ParamGroups(a=optax.sgd(0.1), b=optax.sgd(1.0))
  state, sh = state_from_params(params, lambda _: params, lambda _: groups,
                                mesh)

  def loss_fn(p, batch, rng, frozen):
    del batch, rng, frozen
    return jnp.sum(p['a']**2) + 3.0 * jnp.sum(p['b']) + p['c'], {}

  step = make_train_step(loss_fn, sh, mesh, groups=('a', 'b'),
                         group_grad_norms=True)
  state, m = step(state, {'x': jnp.zeros((2,))}, jax.random.PRNGKey(0))
  np.testing.assert_allclose(m['grad_norm/a'], np.hypot(2.0, 4.0), rtol=1e-6)
  np.testing.assert_allclose(m['grad_norm/b'], 3.0 * np.sqrt(3.0), rtol=1e-6)
  np.testing.assert_allclose(m['grad_norm'], np.sqrt(20.0 + 27.0), rtol=1e-6)
  np.testing.assert_allclose(state.params['a'], [0.8, -1.6], rtol=1e-6)
  np.testing.assert_allclose(state.params['b'], [-2.5] * 3, rtol=1e-6)
  assert float(state.params['c']) == 7.0  # No optimiser: untouched.
  with pytest.raises(ValueError, match='needs `groups`'):
    make_train_step(loss_fn, sh, mesh, group_grad_norms=True)
