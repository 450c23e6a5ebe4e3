"""LoRA on a scan_layers model: stacked adapters equal the unrolled ones."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.models import layout
from jaxreason.models import lora
from jaxreason.models.transformer import Transformer, TransformerConfig

CFG = TransformerConfig.from_preset('tiny')  # 2 layers, untied lm_head.
SCAN = CFG.replace(scan_layers=True, remat='full')
LCFG = lora.LoraConfig(rank=3, alpha=6.0, targets=(
    'q_proj', 'o_proj', 'mlp/down', 'lm_head'))
TOKENS = np.random.default_rng(0).integers(0, CFG.vocab_size, (2, 10))


def _stack(params):
  return {'base': layout.stack_layers(params['base']),
          'lora': layout.stack_layers(params['lora'])}


@functools.lru_cache
def _unrolled_params():
  params = lora.init_params(CFG, LCFG, jax.random.key(0))
  params = dict(nn.unbox(params))
  leaves, treedef = jax.tree.flatten(params['lora'])
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params['lora'] = jax.tree.unflatten(treedef, [
      0.2 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
  return params


def test_targets_and_stacked_adapter_shapes():
  paths = ['/'.join(p) for p in lora.targeted_layers(SCAN, LCFG)]
  assert paths == ['layers/mlp/down_proj', 'layers/self_attn/o_proj',
                   'layers/self_attn/q_proj', 'lm_head']
  boxed = lora.abstract_params(SCAN, LCFG)['lora']
  q = boxed['layers']['self_attn']['q_proj']
  assert q['a'].names == ('layers', 'embed', None)
  assert q['a'].value.shape == (2, CFG.embed_dim, 3)
  assert q['b'].names == ('layers', None, 'heads', 'head_dim')
  o = boxed['layers']['self_attn']['o_proj']
  assert o['a'].value.shape == (2, CFG.num_heads, CFG.head_size, 3)
  assert boxed['lm_head']['a'].names == ('embed', None)
  with pytest.raises(ValueError, match='some layers only'):
    lora.targeted_layers(SCAN, lora.LoraConfig(rank=2,
                                               targets=('layers_1/.*o_proj',)))


def test_scanned_adapters_equal_unrolled_values_and_gradients():
  params = _unrolled_params()
  stacked = _stack(params)
  apply, apply_scan = lora.apply_fn(CFG, LCFG), lora.apply_fn(SCAN, LCFG)

  def loss(apply_fn, adapters, base):
    logits = apply_fn({'base': base, 'lora': adapters}, TOKENS)
    return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[..., 0]), logits

  grad = lambda f: jax.jit(jax.grad(functools.partial(loss, f), has_aux=True))
  g, logits = grad(apply)(params['lora'], params['base'])
  g_scan, logits_scan = grad(apply_scan)(stacked['lora'], stacked['base'])
  base_only = Transformer(CFG).apply({'params': params['base']}, TOKENS)
  assert np.abs(np.asarray(logits) - base_only).max() > 1e-2  # Adapted.
  np.testing.assert_allclose(logits_scan, logits, atol=1e-5, rtol=1e-5)
  assert np.abs(g['layers_1']['self_attn']['q_proj']['a']).max() > 1e-4
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5),
               layout.unstack_layers(g_scan), g)
  # Merged weights: the stacked merge is the stack of the unrolled merge.
  merged = lora.merge(stacked, LCFG)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6),
               merged, layout.stack_layers(lora.merge(params, LCFG)))
  np.testing.assert_allclose(
      Transformer(SCAN).apply({'params': merged}, TOKENS), logits, atol=1e-5)


def test_scanned_dropout_is_seeded_and_training_only():
  lc = lora.LoraConfig(rank=3, alpha=6.0, dropout=0.5, targets=LCFG.targets)
  stacked = _stack(_unrolled_params())
  apply = jax.jit(lora.apply_fn(SCAN, lc), static_argnames='deterministic')
  rng = jax.random.key(3)
  plain = apply(stacked, TOKENS, rng=rng)
  train = apply(stacked, TOKENS, rng=rng, deterministic=False)
  assert np.abs(np.asarray(train) - plain).max() > 1e-3
  np.testing.assert_array_equal(
      train, apply(stacked, TOKENS, rng=rng, deterministic=False))
  other = apply(stacked, TOKENS, rng=jax.random.key(4), deterministic=False)
  assert np.abs(np.asarray(train) - other).max() > 1e-3
