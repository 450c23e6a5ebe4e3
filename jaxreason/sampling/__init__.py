"""Sampling with a KV cache: prefill, decode loop, continuation, scoring.

  from jaxreason import sampling
  sampler = sampling.Sampler(config, cache_size=4096, tokenizer=tok,
                             stop_strings=('\\n\\n',))
  state = sampler.prefill(params, prompts, num_samples=4)
  state, out = sampler.decode(params, state,
                              sampling.SamplingParams.make(
                                  state.batch_size, temperature=0.8),
                              jax.random.key(0), max_new_tokens=256)

See sampler.py for the design; reference.py is the slow cache-free greedy
decoder the sampler is tested against; policy.py loads (config, params,
tokenizer) from a Hugging Face folder or a jaxreason workdir
(`load_policy`), and `python -m jaxreason.generate` samples a JSONL file.
"""

from jaxreason.models.attention import cached_attention
from jaxreason.models.attention import decode_attention_reference
from jaxreason.sampling.attention import AttentionSpec
from jaxreason.sampling.cache import DecodeState
from jaxreason.sampling.cache import KVCache
from jaxreason.sampling.policy import load_policy
from jaxreason.sampling.sampler import Completion
from jaxreason.sampling.sampler import GenerationOutput
from jaxreason.sampling.sampler import Sampler
from jaxreason.sampling.sampler import bucket_rows
from jaxreason.sampling.sampling_params import SamplingParams
from jaxreason.sampling.sampling_params import sample_tokens
from jaxreason.sampling.scoring import score
from jaxreason.sampling.scoring import token_logprobs
from jaxreason.sampling.stopping import FINISH_REASONS
