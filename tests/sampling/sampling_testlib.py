"""Helpers of the sampling tests: one tiny model config for all of them.

Every sampler here uses CONFIG, batch 4 and a decode budget of 16, so the
jitted prefill chunk and decode loop compile once per session (the HF parity
test loads a checkpoint whose config equals CONFIG on purpose).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.models.transformer import Transformer
from jaxreason.models.transformer import TransformerConfig
from jaxreason.models.transformer import abstract_params

TOKENIZER = CharTokenizer()
CONFIG = TransformerConfig.from_preset('tiny',
                                       vocab_size=TOKENIZER.vocab_size)
# Cache of 64 in attention blocks of 16; prompts are appended 8 tokens at a
# time, so most prompts take several prefill chunks.
SAMPLER_KW = dict(cache_size=64, block_size=16, prefill_chunk=8)
BATCH = 4


def random_params(config: TransformerConfig, seed: int = 0):
  """Every weight random and O(0.25), so logits are far from uniform.

  NumPy, not jax.random: compiling a random init takes seconds on a CPU.
  """
  rng = np.random.default_rng(seed)
  shapes = nn.unbox(abstract_params(config))
  def one(path, x):
    noise = rng.normal(0.0, 0.25, x.shape).astype(np.float32)
    return jnp.asarray(1.0 + noise if path[-1].key == 'scale' else noise)
  return jax.tree_util.tree_map_with_path(one, shapes)


def full_logits(params, tokens) -> np.ndarray:
  """Cache-free forward pass of one sequence: [T, V].

  Right-padded to 64 tokens (padding does not change earlier logits in a
  causal model), so one compilation serves every length.
  """
  assert len(tokens) <= 64, len(tokens)
  padded = np.zeros((1, 64), np.int32)
  padded[0, :len(tokens)] = tokens
  return np.asarray(_forward(params, jnp.asarray(padded))[0, :len(tokens)])


@jax.jit
def _forward(params, tokens):
  return Transformer(CONFIG).apply({'params': params}, tokens)


def prompts_of(lengths, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.integers(3, CONFIG.vocab_size, n).tolist() for n in lengths]
