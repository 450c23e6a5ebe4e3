"""Pallas kernels for the KV-cache sampler."""

from jaxreason.sampling.kernels.decode_attention import (
    decode_attention, decode_attention_reference)

__all__ = ['decode_attention', 'decode_attention_reference']
