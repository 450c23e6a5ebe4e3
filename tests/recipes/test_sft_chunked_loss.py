"""config.loss.chunk_size: the SFT loss from hidden states equals the plain."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxreason.models import lora
from jaxreason.models.transformer import (Transformer, TransformerConfig,
                                          Unembed, init_params)
from jaxreason.recipes.sft import make_loss_fn

TIED = TransformerConfig.from_preset('tiny', tie_embeddings=True)
UNTIED = TransformerConfig.from_preset('tiny', scan_layers=True)


def _batch(cfg, b=2, t=16, seed=0):
  rng = np.random.default_rng(seed)
  seg = np.ones((b, t), np.int32)
  seg[:, 10:] = 2
  seg[1, -3:] = 0
  return {'tokens': rng.integers(0, cfg.vocab_size, (b, t)).astype(np.int32),
          'positions': np.concatenate([np.arange(10), np.arange(6)])[None]
                       .repeat(b, 0).astype(np.int32),
          'segment_ids': seg,
          'loss_mask': (rng.random((b, t)) > 0.3).astype(np.int32)}


def _params(cfg, seed=0):
  """Random init scaled up, so logits are far from uniform."""
  params = init_params(cfg.replace(init_std=0.3), jax.random.key(seed))
  return jax.tree.map(lambda x: x if x.ndim > 1 else x + 0.1, params)


@pytest.mark.parametrize('cfg', [TIED, UNTIED], ids=['tied', 'untied_scan'])
def test_hidden_only_then_unembed_is_the_model(cfg):
  params, batch = _params(cfg), _batch(cfg)
  model = Transformer(cfg)
  hidden = model.apply({'params': params}, batch['tokens'], hidden_only=True)
  np.testing.assert_allclose(
      Unembed(cfg).apply({'params': params}, hidden),
      model.apply({'params': params}, batch['tokens']), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('cfg', [TIED, UNTIED], ids=['tied', 'untied_scan'])
def test_chunked_loss_and_gradients_equal_plain(cfg):
  params, batch = _params(cfg), _batch(cfg)
  plain = make_loss_fn(Transformer(cfg))
  chunked = make_loss_fn(Transformer(cfg), chunk_size=6)
  grad = lambda f: jax.jit(jax.value_and_grad(
      lambda p: f(p, batch, None, None), has_aux=True))
  (loss, metrics), g = grad(chunked)(params)
  (ref, ref_metrics), g_ref = grad(plain)(params)
  np.testing.assert_allclose(loss, ref, rtol=1e-6)
  np.testing.assert_allclose(metrics['accuracy'], ref_metrics['accuracy'])
  head = 'embed_tokens' if cfg.tie_embeddings else 'lm_head'
  assert np.abs(jax.tree.leaves(g_ref[head])[0]).max() > 1e-3
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5,
                                                       rtol=1e-5), g, g_ref)


def test_chunked_loss_with_lora():
  lc = lora.LoraConfig(rank=2, alpha=4.0)  # Default targets: no lm_head.
  params = nn.unbox(lora.init_params(UNTIED, lc, jax.random.key(0),
                                     base_params=_params(UNTIED)))
  params['lora'] = jax.tree.map(lambda x: x + 0.1, params['lora'])
  batch = _batch(UNTIED, seed=1)
  model = Transformer(UNTIED)
  plain = make_loss_fn(model, lc)
  chunked = make_loss_fn(model, lc, chunk_size=5)
  grad = lambda f: jax.jit(jax.grad(
      lambda p: f(p, batch, jax.random.key(1), None)[0]))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5,
                                                       rtol=1e-5),
               grad(chunked)(params), grad(plain)(params))
  with pytest.raises(ValueError, match='lm_head'):
    make_loss_fn(model, lora.LoraConfig(rank=2, targets=('lm_head',)),
                 chunk_size=5)
