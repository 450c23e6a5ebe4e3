"""Teacher-forced log-probs of given continuations after prompts.

For GRPO's old-policy and reference log-probs, DPO's sequence log-probs and a
verifier's "yes" / "no" probabilities. Each token's log-prob is
log_softmax(logits / temperature)[token], the number the sampler returns with
a token sampled at that temperature, so sampling and scoring agree.

  logprobs = score(params, config, prompts, continuations, temperature=0.7)

`token_logprobs` is the jittable core, for use inside a train step.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from jaxreason.losses.sft import next_token_log_probs
from jaxreason.models.transformer import Transformer, TransformerConfig

Array = jax.Array


def token_logprobs(params: Any, config: TransformerConfig, tokens: Array,
                   temperature: Array | float = 1.0) -> Array:
  """[B, T-1]: entry t is log p(tokens[:, t+1] | tokens[:, :t+1]).

  tokens: [B, T] int32 (right padding does not change earlier entries).
  temperature: scalar or [B]; logits are divided by it before log-softmax.
  """
  logits = Transformer(config).apply({'params': params}, tokens)  # [B, T, V]
  return next_token_log_probs(logits, tokens, temperature)


_token_logprobs_jit = jax.jit(token_logprobs, static_argnames=('config',))


def score(params: Any, config: TransformerConfig,
          prompts: Sequence[Sequence[int]],
          continuations: Sequence[Sequence[int]],
          temperature: float | Sequence[float] = 1.0, *,
          length_bucket: int = 64) -> list[np.ndarray]:
  """Per-token log-probs of continuations[i] after prompts[i].

  Returns one float32 array of len(continuations[i]) per pair. Sequences are
  right-padded to a multiple of `length_bucket` (fewer compilations).
  """
  if len(prompts) != len(continuations):
    raise ValueError(f'{len(prompts)} prompts but {len(continuations)} '
                     'continuations')
  for i, p in enumerate(prompts):
    if not p:
      raise ValueError(f'prompt {i} is empty: the first token needs context')
  total = [len(p) + len(c) for p, c in zip(prompts, continuations)]
  width = -(-max(total) // length_bucket) * length_bucket
  tokens = np.zeros((len(prompts), width), np.int32)
  for i, (p, c) in enumerate(zip(prompts, continuations)):
    tokens[i, :total[i]] = list(p) + list(c)
  temperature = np.broadcast_to(np.asarray(temperature, np.float32),
                                (len(prompts),))
  logp = np.asarray(_token_logprobs_jit(params, config, tokens, temperature))
  return [logp[i, len(p) - 1:len(p) - 1 + len(c)]
          for i, (p, c) in enumerate(zip(prompts, continuations))]
