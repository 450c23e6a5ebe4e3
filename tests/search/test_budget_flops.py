"""search.budget: parameter counts and FLOPs against a real tiny Transformer."""

import jax
import numpy as np
import pytest

from jaxreason.models.transformer import TransformerConfig, init_params
from jaxreason.search import budget


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('kw', [
    dict(qkv_bias=True, tie_embeddings=True),
    dict(qkv_bias=False, tie_embeddings=False),
    dict(qkv_bias=True, tie_embeddings=False, head_dim=16, num_kv_heads=1),
])
def test_non_embedding_params_is_the_real_count_minus_embeddings(kw):
  cfg = TransformerConfig(vocab_size=37, num_layers=2, embed_dim=24,
                          mlp_dim=40, num_heads=4, **{'num_kv_heads': 2, **kw})
  params = init_params(cfg, jax.random.key(0))
  total = _count(params)
  embedding = [x for path, x in jax.tree_util.tree_leaves_with_path(params)
               if any(getattr(k, 'key', None) in ('embed_tokens', 'lm_head')
                      for k in path)]
  embedding_count = sum(int(np.prod(x.shape)) for x in embedding)
  # Input embedding, plus the unembedding when untied: V x d each.
  assert embedding_count == cfg.vocab_size * cfg.embed_dim * (
      1 if cfg.tie_embeddings else 2), jax.tree.map(np.shape, params)
  assert budget.non_embedding_params(cfg) == total - embedding_count
  assert total == cfg.num_params()


def test_forward_flops_formula():
  cfg = TransformerConfig(vocab_size=10, num_layers=1, embed_dim=8, mlp_dim=16,
                          num_heads=2, num_kv_heads=1)
  n = budget.non_embedding_params(cfg)
  # 2 FLOPs per parameter-token, unembedding 2dV, attention 4 L h hd ctx.
  assert budget.forward_flops(cfg, 3, context=5.0) == pytest.approx(
      3 * (2 * n + 2 * 8 * 10 + 4 * 1 * 2 * 4 * 5))
  assert budget.forward_flops(cfg, 0) == 0.0
