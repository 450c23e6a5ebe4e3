"""Pallas kernels for the KV-cache sampler.

`decode_attention_reference` is the plain-jnp contract of `decode_attention`;
it lives in jaxreason.models.attention and is re-exported here (one
reference for the kernel tests, the sampler tests and tools/).
"""

from jaxreason.models.attention import decode_attention_reference
from jaxreason.sampling.kernels.decode_attention import decode_attention

__all__ = ['decode_attention', 'decode_attention_reference']
