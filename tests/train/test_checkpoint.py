"""Checkpoints: sharded round trip, data iterator, atomic saves."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.data import pipeline
from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.models.transformer import Transformer, TransformerConfig
from jaxreason.sharding.mesh import make_mesh
from jaxreason.train import optim
from jaxreason.train.checkpoint import Checkpointer
from jaxreason.train.state import abstract_train_state, create_train_state

CFG = TransformerConfig.from_preset('tiny')


def _state(mesh, seed):
  init = lambda r: Transformer(CFG).init(r, jnp.zeros((1, 1), jnp.int32))[
      'params']
  tx = lambda m: optim.make_optimizer(dict(lr=1e-3), m)[0]
  rng = jax.random.PRNGKey(seed)
  state, _ = create_train_state(init, tx, rng, mesh)
  abstract, _, _ = abstract_train_state(init, tx, rng, mesh)
  return state, abstract


def test_round_trip_with_shardings_and_iterator(tmp_path):
  mesh = make_mesh([('data', 2), ('fsdp', 2), ('tensor', 2)])
  state, abstract = _state(mesh, 0)
  state = state.replace(step=state.step + 7)
  ds = pipeline.sft_dataset(
      [{'prompt': str(i), 'completion': 'x' * i} for i in range(1, 30)],
      CharTokenizer(), seq_len=16, batch_size=2, seed=0)
  it = iter(ds)
  next(it)
  ckpt = Checkpointer(str(tmp_path), save_every=1, async_save=False)
  assert ckpt.save(7, state, it)
  expected_next = next(it)['tokens']
  ckpt.close()

  other, _ = _state(mesh, 1)  # Different values, same structure.
  it2 = iter(ds)
  restored, _ = Checkpointer(str(tmp_path)).restore(abstract, it2)
  assert int(restored.step) == 7
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b),
               restored.params, state.params)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b),
               restored.opt_state, state.opt_state)
  q = restored.params['layers_0']['self_attn']['q_proj']['kernel']
  assert q.sharding == state.params['layers_0']['self_attn']['q_proj'][
      'kernel'].sharding
  np.testing.assert_array_equal(next(it2)['tokens'], expected_next)
  del other


def test_unfinished_save_is_ignored(tmp_path):
  """A save killed half-way leaves a temporary directory: never restored."""
  mesh = make_mesh([('data', 1), ('fsdp', -1), ('tensor', 1)])
  state, abstract = _state(mesh, 0)
  ckpt = Checkpointer(str(tmp_path), save_every=1, async_save=False)
  ckpt.save(3, state)
  ckpt.close()
  # What orbax leaves behind when killed before the final rename.
  partial = tmp_path / '4.orbax-checkpoint-tmp-1234'
  (partial / 'state').mkdir(parents=True)
  (partial / 'state' / 'garbage').write_bytes(b'\0' * 100)
  ckpt = Checkpointer(str(tmp_path))
  assert ckpt.latest_step() == 3
  restored, _ = ckpt.restore(abstract)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b),
               restored.params, state.params)
  assert not os.path.exists(partial)  # Cleaned up on start.


def test_extra_is_restored_by_a_fresh_manager(tmp_path):
  """`extra` survives a restart (a new Checkpointer, as in a new process)."""
  mesh = make_mesh([('data', 1), ('fsdp', -1), ('tensor', 1)])
  state, abstract = _state(mesh, 0)
  extra = {'round': 2, 'rows': [{'share': 0.25}], 'big': 2**100}
  ckpt = Checkpointer(str(tmp_path), save_every=10, async_save=False)
  ckpt.save(3, state, force=True, extra=extra)
  ckpt.save(10, state)  # Due: saved without extra.
  ckpt.close()
  fresh = Checkpointer(str(tmp_path))
  assert fresh.restore(abstract, step=3)[1] == extra
  assert fresh.restore(abstract, step=10)[1] is None
