"""LoRA: adapters vs merged weights vs NumPy vs transformers; masks; dropout."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.models import lora
from jaxreason.models.transformer import Transformer, TransformerConfig
from jaxreason.sharding.mesh import make_mesh
from jaxreason.train import optim
from jaxreason.train.state import create_train_state
from jaxreason.train.step import make_train_step

# qwen2, untied, q/k/v bias; one layer (compiles fast), two where it matters.
CFG = TransformerConfig.from_preset('tiny', num_layers=1)
CFG2 = TransformerConfig.from_preset('tiny')
LCFG = lora.LoraConfig(rank=4, alpha=8.0)
TOKENS = np.random.default_rng(0).integers(0, CFG.vocab_size, (2, 12))


# Jitted and cached: compiling once per shape keeps this file fast on a
# busy CPU (eager flax compiles every op separately).


@functools.lru_cache
def _init(lora_cfg, cfg):
  return jax.jit(lambda rng: lora.init_params(cfg, lora_cfg, rng))


@functools.lru_cache
def _apply(lora_cfg=LCFG, cfg=CFG):
  return jax.jit(lora.apply_fn(cfg, lora_cfg),
                 static_argnames=('deterministic', 'adapters'))


_merge = jax.jit(lora.merge, static_argnums=1)


@functools.partial(jax.jit, static_argnums=2)
def _base_logits(base, tokens=TOKENS, cfg=CFG):
  return Transformer(cfg).apply({'params': base}, tokens)


def _params(lora_cfg=LCFG, cfg=CFG, seed=0):
  return nn.unbox(_init(lora_cfg, cfg)(jax.random.key(seed)))


def _randomize_adapters(params, seed=1, std=0.2):
  """Every A and B random (B is zero at init, which would hide bugs)."""
  leaves, treedef = jax.tree.flatten(params['lora'])
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  leaves = [std * jax.random.normal(k, x.shape, x.dtype)
            for k, x in zip(keys, leaves)]
  return {'base': params['base'], 'lora': jax.tree.unflatten(treedef, leaves)}


def test_fresh_adapters_give_the_base_model_exactly():
  params = _params()
  for a, b in lora.flat_adapters(params['lora']).values():
    assert np.any(np.asarray(a) != 0)
    np.testing.assert_array_equal(b, 0)
  out = _apply()(params, TOKENS)
  np.testing.assert_array_equal(out, _base_logits(params['base']))


def test_merge_is_w_plus_scaled_ab_numpy():
  params = _randomize_adapters(_params())
  merged = _merge(params, LCFG)
  base = params['base']['layers_0']['self_attn']
  for name in ('q_proj', 'o_proj'):  # o_proj's A contracts two axes.
    w = np.asarray(base[name]['kernel'])
    ad = params['lora']['layers_0']['self_attn'][name]
    a2 = np.asarray(ad['a']).reshape(-1, LCFG.rank)  # [in, r]
    b2 = np.asarray(ad['b']).reshape(LCFG.rank, -1)  # [r, out]
    expected = w + LCFG.alpha / LCFG.rank * (a2 @ b2).reshape(w.shape)
    np.testing.assert_allclose(
        merged['layers_0']['self_attn'][name]['kernel'], expected, atol=1e-6)
  # Untargeted leaves are the base's.
  np.testing.assert_array_equal(merged['layers_0']['self_attn']['q_proj'][
      'bias'], params['base']['layers_0']['self_attn']['q_proj']['bias'])
  np.testing.assert_array_equal(merged['lm_head']['kernel'],
                                params['base']['lm_head']['kernel'])


def test_adapters_equal_merged_weights_and_off_is_base():
  params = _randomize_adapters(_params())
  apply = _apply()
  out = apply(params, TOKENS)
  base = _base_logits(params['base'])
  assert np.abs(np.asarray(out) - base).max() > 1e-2
  np.testing.assert_allclose(out, _base_logits(_merge(params, LCFG)),
                             atol=1e-5, rtol=0)
  # adapters=False is the base model, from the same arrays.
  np.testing.assert_array_equal(apply(params, TOKENS, adapters=False), base)


def test_adapter_gradients_under_remat_match_merged():
  """The interceptor closes over the adapters; remat must keep their grads."""
  params = _randomize_adapters(_params())
  remat_cfg = CFG.replace(remat='full')
  apply = lora.apply_fn(remat_cfg, LCFG)

  def loss(lora_params):
    logits = apply({'base': params['base'], 'lora': lora_params}, TOKENS)
    return jnp.mean(jax.nn.logsumexp(logits, -1))

  def merged_loss(lora_params):
    p = lora.merge({'base': params['base'], 'lora': lora_params}, LCFG)
    logits = Transformer(CFG).apply({'params': p}, TOKENS)
    return jnp.mean(jax.nn.logsumexp(logits, -1))

  g = jax.jit(jax.grad(loss))(params['lora'])
  g_merged = jax.jit(jax.grad(merged_loss))(params['lora'])
  assert all(np.abs(x).max() > 0 for x in jax.tree.leaves(g))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5),
               g, g_merged)


def test_targets_select_kernels_by_pattern():
  lc = lora.LoraConfig(rank=2, targets=('q_proj', 'v_proj'))
  paths = ['/'.join(p) for p in lora.targeted_layers(CFG2, lc)]
  assert paths == [f'layers_{i}/self_attn/{n}'
                   for i in range(2) for n in ('q_proj', 'v_proj')]
  params = _params(lc)
  q = params['lora']['layers_0']['self_attn']['q_proj']
  d, h, k, hd = CFG.embed_dim, CFG.num_heads, CFG.num_kv_heads, CFG.head_size
  assert q['a'].shape == (d, 2) and q['b'].shape == (2, h, hd)
  assert params['lora']['layers_0']['self_attn']['v_proj']['b'].shape == (
      2, k, hd)
  assert sorted(params['lora']['layers_0']) == ['self_attn']
  assert sorted(params['lora']['layers_0']['self_attn']) == ['q_proj',
                                                             'v_proj']
  # Regexes over the full kernel path.
  lc = lora.LoraConfig(rank=3, targets=(r'layers_1/.*o_proj', 'lm_head',
                                        r'mlp/down'))
  params = _params(lc, CFG2)
  paths = sorted('/'.join(p) for p in lora.flat_adapters(params['lora']))
  assert paths == ['layers_0/mlp/down_proj', 'layers_1/mlp/down_proj',
                   'layers_1/self_attn/o_proj', 'lm_head']
  o = params['lora']['layers_1']['self_attn']['o_proj']
  assert o['a'].shape == (h, hd, 3) and o['b'].shape == (3, d)
  assert params['lora']['lm_head']['b'].shape == (3, CFG.vocab_size)
  params = _randomize_adapters(params)
  np.testing.assert_allclose(
      _apply(lc, CFG2)(params, TOKENS),
      _base_logits(_merge(params, lc), TOKENS, CFG2), atol=1e-5, rtol=0)
  for bad in ('qproj', 'embed_tokens'):
    with pytest.raises(ValueError, match='matches no dense kernel'):
      lora.targeted_layers(CFG, lora.LoraConfig(rank=2, targets=(bad,)))


def test_logical_axes_of_adapters():
  boxed = lora.abstract_params(CFG, LCFG)['lora']['layers_0']
  names = lambda x: tuple(x.names)
  assert names(boxed['self_attn']['q_proj']['a']) == ('embed', None)
  assert names(boxed['self_attn']['q_proj']['b']) == (None, 'heads',
                                                      'head_dim')
  assert names(boxed['self_attn']['o_proj']['a']) == ('heads', 'head_dim',
                                                      None)
  assert names(boxed['self_attn']['o_proj']['b']) == (None, 'embed')
  assert names(boxed['mlp']['down_proj']['a']) == ('mlp', None)


def test_dropout_only_in_training_mode():
  lc = lora.LoraConfig(rank=4, alpha=8.0, dropout=0.5)
  params = _randomize_adapters(_params())  # Init does not depend on dropout.
  apply = _apply(lc)
  no_dropout = _apply()(params, TOKENS)
  rng = jax.random.key(3)
  np.testing.assert_array_equal(apply(params, TOKENS, rng=rng), no_dropout)
  train1 = apply(params, TOKENS, rng=rng, deterministic=False)
  train2 = apply(params, TOKENS, rng=jax.random.key(4), deterministic=False)
  assert np.abs(np.asarray(train1) - no_dropout).max() > 1e-3
  assert np.abs(np.asarray(train1) - train2).max() > 1e-3
  np.testing.assert_array_equal(
      train1, apply(params, TOKENS, rng=rng, deterministic=False))
  # Dropout acts on the adapter input only: with B = 0 nothing changes.
  fresh = _params()
  np.testing.assert_array_equal(
      apply(fresh, TOKENS, rng=rng, deterministic=False),
      _base_logits(fresh['base']))
  with pytest.raises(ValueError, match='needs rng'):
    apply(params, TOKENS, deterministic=False)


def test_only_adapters_train():
  mesh = make_mesh([('data', 1), ('fsdp', -1), ('tensor', 1)])
  lc = lora.LoraConfig(rank=4, alpha=8.0, dropout=0.1)
  apply = lora.apply_fn(CFG, lc)
  cfg = dict(name='adamw', lr=1e-2, weight_decay=0.1, clip_norm=1.0)
  tx_factory = lambda mask: optim.make_optimizer(cfg, mask)[0]
  state, sh = create_train_state(
      lambda rng: lora.init_params(CFG, lc, rng), tx_factory,
      jax.random.key(0), mesh, trainable=lora.trainable_mask)
  assert sh.params['lora']['layers_0']['self_attn']['q_proj']['a'].spec == (
      jax.sharding.PartitionSpec('fsdp', None))

  def loss_fn(params, batch, rng, frozen):
    del frozen
    logits = apply(params, batch['tokens'], rng=rng, deterministic=False)
    logp = jax.nn.log_softmax(logits[:, :-1])
    nll = -jnp.take_along_axis(logp, batch['tokens'][:, 1:, None], -1)
    return nll.mean(), {}

  step = make_train_step(loss_fn, sh, mesh)
  before = jax.device_get(state.params)
  batch = {'tokens': jnp.asarray(np.tile(TOKENS, (4, 1)), jnp.int32)}
  for _ in range(2):  # A's gradient is zero while B = 0: two steps.
    state, metrics = step(state, batch, jax.random.key(1))
  after = jax.device_get(state.params)
  jax.tree.map(np.testing.assert_array_equal, after['base'], before['base'])
  changed = jax.tree.map(lambda x, y: bool(np.any(x != y)), after['lora'],
                         before['lora'])
  assert all(jax.tree.leaves(changed)), changed
  assert np.isfinite(metrics['loss']) and metrics['grad_norm'] > 0
  # No optimizer moments for the frozen base.
  n_moments = sum(x.size for x in jax.tree.leaves(state.opt_state))
  n_lora = sum(x.size for x in jax.tree.leaves(state.params['lora']))
  assert n_moments < 3 * n_lora


def test_export_merged_loads_in_transformers(tmp_path):
  torch = pytest.importorskip('torch')
  transformers = pytest.importorskip('transformers')
  params = _randomize_adapters(_params())
  lora.export_merged(str(tmp_path / 'hf'), CFG, params, LCFG)
  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(tmp_path / 'hf'), attn_implementation='eager')
  with torch.no_grad():
    hf_logits = model(torch.as_tensor(TOKENS)).logits.float().numpy()
  ours = np.asarray(_apply()(params, TOKENS))
  assert np.abs(ours - _base_logits(params['base'])).max() > 1e-2
  np.testing.assert_allclose(hf_logits, ours, atol=1e-4, rtol=0)


def test_config_from():
  assert lora.config_from(None) is None
  assert lora.config_from({'rank': 0, 'alpha': 16.0}) is None
  c = lora.config_from({'rank': 8, 'alpha': 16.0, 'dropout': 0.05,
                        'targets': ['q_proj', 'v_proj']})
  assert c == lora.LoraConfig(8, 16.0, 0.05, ('q_proj', 'v_proj'))
  assert c.scale == 2.0
  with pytest.raises(ValueError, match='dropout'):
    lora.LoraConfig(rank=2, dropout=1.0)
