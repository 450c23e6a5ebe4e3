"""Transformer: shapes of full-size models, logical axes, packing isolation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.models.transformer import (PRESETS, Transformer,
                                          TransformerConfig, abstract_params,
                                          init_params)

# Published parameter counts (sum of tensor sizes in the released
# safetensors checkpoints).
PUBLISHED = {
    'qwen2.5-0.5b': 494_032_768,
    'qwen2.5-1.5b': 1_543_714_304,
    'qwen2.5-7b': 7_615_616_512,
    'llama3.2-1b': 1_235_814_400,
    'llama3.1-8b': 8_030_261_248,
}


@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_full_size_param_count_by_shape(name):
  cfg = PRESETS[name]
  abstract = abstract_params(cfg)  # jax.eval_shape: nothing is allocated.
  n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.unbox(abstract)))
  assert n == PUBLISHED[name]
  assert cfg.num_params() == PUBLISHED[name]


def test_every_param_has_logical_axes():
  abstract = abstract_params(PRESETS['qwen2.5-0.5b'])
  leaves = jax.tree.leaves(abstract,
                           is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert leaves and all(isinstance(x, nn.Partitioned) for x in leaves)
  for leaf in leaves:
    assert len(leaf.names) == len(leaf.value.shape)


def test_logits_shape_and_default_positions():
  cfg = PRESETS['tiny']
  params = init_params(cfg, jax.random.PRNGKey(0))
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 7), 0, cfg.vocab_size)
  logits = Transformer(cfg).apply({'params': params}, tokens)
  assert logits.shape == (2, 7, cfg.vocab_size) and logits.dtype == jnp.float32
  pos = jnp.broadcast_to(jnp.arange(7), (2, 7))
  explicit = Transformer(cfg).apply({'params': params}, tokens, pos,
                                    jnp.ones((2, 7), jnp.int32))
  np.testing.assert_array_equal(np.asarray(logits), np.asarray(explicit))


def test_packed_examples_never_attend_to_each_other():
  cfg = PRESETS['tiny']
  params = init_params(cfg, jax.random.PRNGKey(0))
  model = Transformer(cfg)
  rng = np.random.default_rng(0)
  a = rng.integers(0, cfg.vocab_size, 5)
  b = rng.integers(0, cfg.vocab_size, 7)
  packed = np.concatenate([a, b, [0, 0]])[None].astype(np.int32)
  seg = np.array([[1] * 5 + [2] * 7 + [0, 0]], np.int32)
  pos = np.array([list(range(5)) + list(range(7)) + [0, 0]], np.int32)
  out = model.apply({'params': params}, packed, pos, seg)[0]
  alone_a = model.apply({'params': params}, a[None].astype(np.int32))[0]
  alone_b = model.apply({'params': params}, b[None].astype(np.int32))[0]
  np.testing.assert_allclose(out[:5], alone_a, atol=1e-5)
  np.testing.assert_allclose(out[5:12], alone_b, atol=1e-5)
  # And changing example a does not move example b's logits at all.
  packed2 = packed.copy()
  packed2[0, :5] = (packed2[0, :5] + 1) % cfg.vocab_size
  out2 = model.apply({'params': params}, packed2, pos, seg)[0]
  np.testing.assert_array_equal(np.asarray(out[5:12]), np.asarray(out2[5:12]))


@pytest.mark.parametrize('remat', ['full', 'dots'])
def test_remat_gives_same_gradients(remat):
  cfg = PRESETS['tiny']
  params = init_params(cfg, jax.random.PRNGKey(0))
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 6), 0, cfg.vocab_size)

  def loss(p, c):
    return Transformer(c).apply({'params': p}, tokens).mean()

  g0 = jax.grad(loss)(params, cfg)
  g1 = jax.grad(loss)(params, cfg.replace(remat=remat))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), g0, g1)


def test_bfloat16_params_and_compute():
  cfg = PRESETS['tiny'].replace(dtype='bfloat16', param_dtype='bfloat16')
  params = init_params(cfg, jax.random.PRNGKey(0))
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
  logits = Transformer(cfg).apply({'params': params},
                                  jnp.zeros((1, 4), jnp.int32))
  assert logits.dtype == jnp.float32 and np.isfinite(np.asarray(logits)).all()


def test_bad_config_is_rejected():
  with pytest.raises(ValueError, match='num_kv_heads'):
    TransformerConfig(vocab_size=8, num_layers=1, embed_dim=8, mlp_dim=8,
                      num_heads=3, num_kv_heads=2)
  with pytest.raises(ValueError, match='dtype'):
    PRESETS['tiny'].replace(dtype='int8')
  with pytest.raises(ValueError, match='Unknown model preset'):
    TransformerConfig.from_preset('gpt-5')
