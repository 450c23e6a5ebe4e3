"""Decoder-only transformer for the Qwen2 / Qwen2.5 and Llama-3 families.

RMSNorm, rotary embeddings (optionally with Llama-3 frequency scaling),
grouped-query attention, SwiGLU MLP, optional q/k/v bias, tied or untied
embeddings. Every parameter carries logical axis names (see
`jaxreason/sharding/rules.py`); activations are constrained by the same names.

  model = Transformer(TransformerConfig.from_preset('qwen2.5-0.5b'))
  logits = model.apply({'params': params}, tokens)        # [B, T, V] float32

Cache mode (sampling, `jaxreason/sampling`): with `cache=` a KV cache (a pytree
with k, v [L, B, S, K, D] and lengths [B]), `tokens` [B, T] is a right-padded
chunk of new tokens per row, appended at each row's length:

  logits, cache = model.apply({'params': params}, tokens, cache=cache,
                              num_new=num_new)           # [B, T, V], cache

Parameter names follow the Hugging Face modules (`layers_3/self_attn/q_proj`)
so that `hf.py` is a plain renaming plus transposes. With
`TransformerConfig(scan_layers=True)` the layers are one `nn.scan`: each
parameter of `layers/self_attn/q_proj` etc. has a leading [L] axis (logical
name 'layers'); `jaxreason.models.layout` converts between the two layouts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.models import attention
from jaxreason.models.attention import causal_attention
from jaxreason.sharding.rules import constrain

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class RopeScaling:
  """Llama-3 ('llama3' rope_type) frequency scaling."""

  factor: float = 8.0
  low_freq_factor: float = 1.0
  high_freq_factor: float = 4.0
  original_max_position_embeddings: int = 8192


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Model hyper-parameters. Field names follow common usage, not HF's."""

  vocab_size: int
  num_layers: int
  embed_dim: int
  mlp_dim: int
  num_heads: int
  num_kv_heads: int
  head_dim: int | None = None  # Defaults to embed_dim // num_heads.
  rope_theta: float = 10000.0
  rope_scaling: RopeScaling | None = None
  rms_norm_eps: float = 1e-6
  qkv_bias: bool = False
  tie_embeddings: bool = False
  max_position_embeddings: int = 32768
  dtype: str = 'float32'  # Computation dtype.
  param_dtype: str = 'float32'
  remat: str = 'none'  # 'none' | 'full' | 'dots' (save matmul outputs).
  # Stack the layers' parameters over a leading 'layers' axis and run them
  # with one `nn.scan` (compile time independent of depth). Params then live
  # under 'layers' instead of 'layers_0'...; see `jaxreason.models.layout`.
  scan_layers: bool = False
  # Training-mode attention in causal query blocks of this many tokens: block
  # i attends only to keys [0, end of block i), skipping the masked upper
  # triangle (exact; T=512 at 128: 10/16 of the score work). 0: one block.
  # Each block is its own set of ops, so compile time grows with T / block.
  attention_block_size: int = 0
  init_std: float = 0.02
  model_type: str = 'qwen2'  # 'qwen2' | 'llama': the HF architecture on export.
  bos_token_id: int | None = None
  eos_token_id: int | None = None

  def __post_init__(self):
    if isinstance(self.rope_scaling, dict):
      object.__setattr__(self, 'rope_scaling', RopeScaling(**self.rope_scaling))
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
          f'num_heads={self.num_heads} is not a multiple of '
          f'num_kv_heads={self.num_kv_heads}')
    for name in ('dtype', 'param_dtype'):
      if getattr(self, name) not in ('float32', 'bfloat16', 'float16'):
        raise ValueError(f'{name}={getattr(self, name)!r}: expected float32, '
                         'bfloat16 or float16')
    if self.remat not in ('none', 'full', 'dots'):
      raise ValueError(f'remat={self.remat!r}: expected none, full or dots')
    if self.attention_block_size < 0:
      raise ValueError(f'attention_block_size={self.attention_block_size} '
                       'must be >= 0 (0: unblocked)')

  @property
  def head_size(self) -> int:
    return self.head_dim or self.embed_dim // self.num_heads

  @property
  def jnp_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def jnp_param_dtype(self):
    return jnp.dtype(self.param_dtype)

  def num_params(self) -> int:
    d, f, h, k, hd = (self.embed_dim, self.mlp_dim, self.num_heads,
                      self.num_kv_heads, self.head_size)
    attn = d * h * hd * 2 + d * k * hd * 2
    if self.qkv_bias:
      attn += (h + 2 * k) * hd
    layer = attn + 3 * d * f + 2 * d
    emb = self.vocab_size * d * (1 if self.tie_embeddings else 2)
    return self.num_layers * layer + emb + d

  def replace(self, **kw) -> 'TransformerConfig':
    return dataclasses.replace(self, **kw)

  @classmethod
  def from_preset(cls, name: str, **overrides) -> 'TransformerConfig':
    if name not in PRESETS:
      raise ValueError(f'Unknown model preset {name!r}; known: {sorted(PRESETS)}')
    return dataclasses.replace(PRESETS[name], **overrides)


def _qwen(layers, d, f, h, k, vocab=151936, tie=True, theta=1e6, eps=1e-6):
  return TransformerConfig(
      vocab_size=vocab, num_layers=layers, embed_dim=d, mlp_dim=f,
      num_heads=h, num_kv_heads=k, rope_theta=theta, rms_norm_eps=eps,
      qkv_bias=True, tie_embeddings=tie, model_type='qwen2',
      eos_token_id=151643)


def _llama(layers, d, f, h, k, tie=False):
  return TransformerConfig(
      vocab_size=128256, num_layers=layers, embed_dim=d, mlp_dim=f,
      num_heads=h, num_kv_heads=k, head_dim=d // h, rope_theta=500000.0,
      rope_scaling=RopeScaling(
          factor=32.0 if tie else 8.0,
          original_max_position_embeddings=8192),
      rms_norm_eps=1e-5, tie_embeddings=tie, max_position_embeddings=131072,
      model_type='llama', bos_token_id=128000, eos_token_id=128001)


PRESETS: dict[str, TransformerConfig] = {
    'qwen2.5-0.5b': _qwen(24, 896, 4864, 14, 2),
    'qwen2.5-1.5b': _qwen(28, 1536, 8960, 12, 2),
    'qwen2.5-3b': _qwen(36, 2048, 11008, 16, 2),
    'qwen2.5-7b': _qwen(28, 3584, 18944, 28, 4, vocab=152064, tie=False),
    'qwen2.5-14b': _qwen(48, 5120, 13824, 40, 8, vocab=152064, tie=False,
                         eps=1e-5),
    'llama3.2-1b': _llama(16, 2048, 8192, 32, 8, tie=True),
    'llama3.2-3b': _llama(28, 3072, 8192, 24, 8, tie=True),
    'llama3.1-8b': _llama(32, 4096, 14336, 32, 8),
    # Bench shape of tools/bench_train.py (40.5M parameters).
    'bench-40m': TransformerConfig(
        vocab_size=32000, num_layers=8, embed_dim=512, mlp_dim=1280,
        num_heads=8, num_kv_heads=8, qkv_bias=True, tie_embeddings=True),
    # GPT-2-small-like width and depth (123.7M), tools/bench_train.py.
    'bench-124m': TransformerConfig(
        vocab_size=32000, num_layers=12, embed_dim=768, mlp_dim=2560,
        num_heads=12, num_kv_heads=12, qkv_bias=True, tie_embeddings=True),
    # The bench tools' own tests (seconds).
    'bench-tiny': TransformerConfig(
        vocab_size=256, num_layers=2, embed_dim=64, mlp_dim=128, num_heads=4,
        num_kv_heads=4, qkv_bias=True, tie_embeddings=True),
    # Few-thousand-parameter model for numeric tests.
    'tiny': TransformerConfig(
        vocab_size=64, num_layers=2, embed_dim=32, mlp_dim=64, num_heads=4,
        num_kv_heads=2, qkv_bias=True, tie_embeddings=False),
}


# Rotary embeddings -------------------------------------------------------------


def rope_inv_freq(config: TransformerConfig) -> np.ndarray:
  """Inverse frequencies [head_dim // 2], with Llama-3 scaling if configured."""
  dim = config.head_size
  inv_freq = 1.0 / (config.rope_theta
                    ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
  s = config.rope_scaling
  if s is None:
    return inv_freq.astype(np.float32)
  low_wavelen = s.original_max_position_embeddings / s.low_freq_factor
  high_wavelen = s.original_max_position_embeddings / s.high_freq_factor
  wavelen = 2 * math.pi / inv_freq
  scaled = np.where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq)
  smooth = ((s.original_max_position_embeddings / wavelen - s.low_freq_factor)
            / (s.high_freq_factor - s.low_freq_factor))
  smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
  medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
  return np.where(medium, smoothed, scaled).astype(np.float32)


# (cos, sin), each float32 [B, T, 1, D/2]: the rotation at each position.
RopeTables = tuple[Array, Array]


def rope_tables(positions: Array, inv_freq: np.ndarray) -> RopeTables:
  """cos and sin of positions [B, T] times inv_freq, for `apply_rope`.

  Computed once per forward pass and shared by every layer's q and k: per
  layer, the sines and cosines were recomputed inside each fused rotation
  (bench-40m fwd+bwd: ~5% of the step).
  """
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, D/2]
  return jnp.cos(freqs)[:, :, None, :], jnp.sin(freqs)[:, :, None, :]


def apply_rope(x: Array, rope: RopeTables) -> Array:
  """Rotates x [B, T, N, D] by `rope_tables` (rotate-half convention)."""
  cos, sin = rope
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


# Layers ------------------------------------------------------------------------


def token_major(fn: Callable[[Array], Array], x: Array, num_features: int = 1
                ) -> Array:
  """fn applied to x [*lead, *features] as [prod(lead), *features].

  Dense layers see one token axis instead of [B, T]: the weight gradient is
  then a plain 2-D contraction over tokens, which XLA:CPU maps to one GEMM,
  while contracting [B, T] together costs a transposed copy of the
  activation gradient per layer (bench-40m fwd+bwd: see tools/bench_train.py).
  """
  lead = x.shape[:x.ndim - num_features]
  y = fn(x.reshape((-1,) + x.shape[len(lead):]))
  return y.reshape(lead + y.shape[1:])


def _init(config: TransformerConfig, names):
  return nn.with_logical_partitioning(
      nn.initializers.normal(config.init_std), names)


class RMSNorm(nn.Module):
  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    scale = self.param('scale', nn.with_logical_partitioning(
        nn.initializers.ones, ('norm',)), (x.shape[-1],), cfg.jnp_param_dtype)
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True)
                            + cfg.rms_norm_eps)
    return scale.astype(cfg.jnp_dtype) * y.astype(cfg.jnp_dtype)


def attention_mask(segment_ids: Array, kv_segment_ids: Array | None = None,
                   q_index: Array | None = None,
                   kv_index: Array | None = None) -> Array:
  """Boolean [B, 1, T, S] mask: causal by index and same segment.

  Tokens of different packed examples (segment ids) never attend to each
  other. Segment id 0 marks padding; padding attends only to padding, so no
  row of the softmax is empty.
  """
  kv_segment_ids = segment_ids if kv_segment_ids is None else kv_segment_ids
  t, s = segment_ids.shape[1], kv_segment_ids.shape[1]
  q_index = jnp.arange(t)[None] if q_index is None else q_index
  kv_index = jnp.arange(s)[None] if kv_index is None else kv_index
  causal = q_index[:, :, None] >= kv_index[:, None, :]
  same = segment_ids[:, :, None] == kv_segment_ids[:, None, :]
  return (causal & same)[:, None]


@dataclasses.dataclass(frozen=True)
class LayerCache:
  """One layer's view of the KV cache inside a cache-mode call (not a pytree).

  k, v hold all layers, [L, B, S, K, D]: `write` scatters this layer's new
  keys and values into them, which XLA does in place, and `attend` reads them
  block by block through `attention_fn` (see jaxreason/models/attention.py).
  """

  k: Array  # [L, B, S, K, D]
  v: Array  # [L, B, S, K, D]
  layer: int | Array  # A Python int; an int32 scalar under `scan_layers`.
  positions: Array  # [B, T] cache positions of the new tokens.
  write_index: Array  # [B, T] cache index of each new token; S for padding.
  kv_lengths: Array  # [B] valid cache entries once the new tokens are in.
  attention_fn: Callable[..., Array]

  def write(self, k_new: Array, v_new: Array) -> 'LayerCache':
    """k_new, v_new: [B, T, K, D]; padding (index S) is dropped."""
    rows = jnp.arange(k_new.shape[0])[:, None]  # [B, 1]
    at = (self.layer, rows, self.write_index)
    k = self.k.at[at].set(k_new.astype(self.k.dtype), mode='drop')
    v = self.v.at[at].set(v_new.astype(self.v.dtype), mode='drop')
    return dataclasses.replace(self, k=k, v=v)

  def attend(self, q: Array) -> Array:
    """q: [B, T, H, D] of the new tokens -> [B, T, H, D]."""
    return self.attention_fn(q, self.k, self.v, self.positions,
                             self.kv_lengths, self.layer)


class Attention(nn.Module):
  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, rope: RopeTables, mask: Array | None,
               cache: LayerCache | None = None) -> Any:
    """-> [B, T, D]; with a cache, (output, cache with this layer written)."""
    cfg = self.config
    hd = cfg.head_size
    dense = lambda feats, names, bias, name: nn.DenseGeneral(
        feats, use_bias=bias, dtype=cfg.jnp_dtype,
        param_dtype=cfg.jnp_param_dtype, kernel_init=_init(cfg, names),
        bias_init=nn.with_logical_partitioning(
            nn.initializers.zeros, names[1:]), name=name)
    q = token_major(dense((cfg.num_heads, hd), ('embed', 'heads', 'head_dim'),
                          cfg.qkv_bias, 'q_proj'), x)
    k = token_major(dense((cfg.num_kv_heads, hd),
                          ('embed', 'kv_heads', 'head_dim'), cfg.qkv_bias,
                          'k_proj'), x)
    v = token_major(dense((cfg.num_kv_heads, hd),
                          ('embed', 'kv_heads', 'head_dim'), cfg.qkv_bias,
                          'v_proj'), x)
    q = constrain(q, ('act_batch', 'act_length', 'act_heads', None))
    k = constrain(k, ('act_batch', 'act_length', 'act_kv_heads', None))
    v = constrain(v, ('act_batch', 'act_length', 'act_kv_heads', None))
    q = apply_rope(q, rope)
    k = apply_rope(k, rope)
    if cache is None:
      out = causal_attention(q, k, v, mask,  # [B, T, H, D]
                             cfg.attention_block_size)
    else:
      cache = cache.write(k, v)
      out = cache.attend(q)  # [B, T, H, D]
    out = constrain(out, ('act_batch', 'act_length', 'act_heads', None))
    out = token_major(nn.DenseGeneral(
        cfg.embed_dim, axis=(-2, -1), use_bias=False, dtype=cfg.jnp_dtype,
        param_dtype=cfg.jnp_param_dtype,
        kernel_init=_init(cfg, ('heads', 'head_dim', 'embed')),
        name='o_proj'), out, num_features=2)
    return out if cache is None else (out, cache)


class MLP(nn.Module):
  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    dense = lambda feats, names, name: nn.Dense(
        feats, use_bias=False, dtype=cfg.jnp_dtype,
        param_dtype=cfg.jnp_param_dtype, kernel_init=_init(cfg, names),
        name=name)
    gate = token_major(dense(cfg.mlp_dim, ('embed', 'mlp'), 'gate_proj'), x)
    up = token_major(dense(cfg.mlp_dim, ('embed', 'mlp'), 'up_proj'), x)
    h = constrain(nn.silu(gate) * up, ('act_batch', 'act_length', 'act_mlp'))
    return token_major(dense(cfg.embed_dim, ('mlp', 'embed'), 'down_proj'), h)


class DecoderLayer(nn.Module):
  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, rope: RopeTables, mask: Array | None,
               cache: LayerCache | None = None) -> Any:
    """-> [B, T, D]; with a cache, (output, cache with this layer written)."""
    cfg = self.config
    x = constrain(x, ('act_batch', 'act_length', 'act_embed'))
    h = RMSNorm(cfg, name='input_layernorm')(x)
    if cache is None:
      x = x + Attention(cfg, name='self_attn')(h, rope, mask)
    else:
      attn, cache = Attention(cfg, name='self_attn')(h, rope, mask, cache)
      x = x + attn
    h = RMSNorm(cfg, name='post_attention_layernorm')(x)
    x = x + MLP(cfg, name='mlp')(h)
    x = constrain(x, ('act_batch', 'act_length', 'act_embed'))
    return x if cache is None else (x, cache)


class Transformer(nn.Module):
  """Decoder. `apply({'params': p}, tokens)` -> float32 logits [B, T, V]."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, tokens: Array, positions: Array | None = None,
               segment_ids: Array | None = None, *,
               return_hidden: bool = False, cache: Any = None,
               num_new: Array | None = None,
               attention_fn: Callable[..., Array] | None = None,
               last_only: bool = False, hidden_only: bool = False) -> Any:
    """tokens, positions, segment_ids: int32 [B, T].

    positions default to 0..T-1 and segment_ids to one segment (a plain causal
    sequence). With `return_hidden=True` returns (logits, final hidden states
    [B, T, D] after the last norm), for value / reward heads. With
    `hidden_only=True` (apply only, not init) returns just those hidden states:
    the unembedding is left to `Unembed` (e.g. applied chunk by chunk in a
    chunked cross-entropy, `jaxreason.losses.sft.chunked_sft_loss`).

    Cache mode, `cache` given (a `jaxreason.sampling.KVCache`: k, v
    [L, B, S, K, D] and lengths [B], prompts left-aligned): tokens [B, T] is a
    right-padded chunk of new tokens, of which the first num_new[b] (default
    T) are real. Their positions are lengths[b] + 0..T-1 (RoPE position =
    cache position); their keys and values are written at cache indices
    [lengths[b], lengths[b] + num_new[b]) and the queries attend over the
    cache with `attention_fn` (default: the blocked jnp attention of
    jaxreason/models/attention.py). The caller keeps lengths + num_new <= S
    (writes past S are dropped). Returns (logits, new cache), or
    (logits, hidden, new cache); with `last_only` logits [B, V] (hidden
    [B, D]) are those of each row's last real token (index num_new[b] - 1).
    """
    cfg = self.config
    if tokens.ndim != 2:
      raise ValueError(f'tokens must be [B, T], got shape {tokens.shape}')
    b, t = tokens.shape
    layer_cache = None
    if cache is not None:
      if positions is not None or segment_ids is not None:
        raise ValueError('cache mode takes positions from cache.lengths; do '
                         'not pass positions or segment_ids')
      _, cache_b, size = cache.k.shape[:3]
      if cache_b != b or cache.lengths.shape != (b,):
        raise ValueError(f'tokens {tokens.shape} do not match the cache: k '
                         f'{cache.k.shape}, lengths {cache.lengths.shape}')
      if num_new is None:
        num_new = jnp.full((b,), t, jnp.int32)
      positions = cache.lengths[:, None] + jnp.arange(t, dtype=jnp.int32)
      is_new = jnp.arange(t)[None, :] < num_new[:, None]  # [B, T]
      if attention_fn is None:
        attention_fn = attention.default_attention_fn
      layer_cache = LayerCache(
          k=cache.k, v=cache.v, layer=0, positions=positions,
          write_index=jnp.where(is_new, positions, size),
          kv_lengths=cache.lengths + num_new, attention_fn=attention_fn)
      mask = None
    else:
      if positions is None:
        positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
      if segment_ids is None:
        segment_ids = jnp.ones((b, t), jnp.int32)
      mask = attention_mask(segment_ids)

    embed = _embed_tokens(cfg)
    x = embed(tokens)
    rope = rope_tables(positions, rope_inv_freq(cfg))
    if cfg.scan_layers:
      x, layer_cache = _scan_layers(cfg, x, rope, mask, layer_cache)
    else:
      layer_cls = _remat_layer(cfg, prevent_cse=True)
      for i in range(cfg.num_layers):
        if layer_cache is None:
          x = layer_cls(cfg, name=f'layers_{i}')(x, rope, mask)
        else:  # No remat when decoding; the parameters are the same.
          x, layer_cache = DecoderLayer(cfg, name=f'layers_{i}')(
              x, rope, mask, dataclasses.replace(layer_cache, layer=i))
    hidden = RMSNorm(cfg, name='norm')(x)
    if last_only:
      if cache is None:
        raise ValueError('last_only needs cache mode')
      last = jnp.maximum(num_new - 1, 0)
      hidden = hidden[jnp.arange(b), last][:, None]  # [B, 1, D]
    if hidden_only:
      if cache is not None or return_hidden:
        raise ValueError('hidden_only is for training mode (no cache) and '
                         'returns the hidden states only')
      return hidden
    logits = token_major(embed.attend if cfg.tie_embeddings
                         else _lm_head(cfg), hidden)
    logits = constrain(logits.astype(jnp.float32),
                       ('act_batch', 'act_length', 'act_vocab'))
    if cache is None:
      return (logits, hidden) if return_hidden else logits
    if last_only:
      logits, hidden = logits[:, 0], hidden[:, 0]
    cache = cache.replace(k=layer_cache.k, v=layer_cache.v,
                          lengths=layer_cache.kv_lengths)
    return (logits, hidden, cache) if return_hidden else (logits, cache)


def _embed_tokens(cfg: TransformerConfig) -> nn.Embed:
  return nn.Embed(
      cfg.vocab_size, cfg.embed_dim, dtype=cfg.jnp_dtype,
      param_dtype=cfg.jnp_param_dtype,
      embedding_init=_init(cfg, ('vocab', 'embed')), name='embed_tokens')


def _lm_head(cfg: TransformerConfig) -> nn.Dense:
  return nn.Dense(
      cfg.vocab_size, use_bias=False, dtype=cfg.jnp_dtype,
      param_dtype=cfg.jnp_param_dtype,
      kernel_init=_init(cfg, ('embed', 'vocab')), name='lm_head')


class Unembed(nn.Module):
  """hidden [..., D] -> float32 logits [..., V]: the Transformer's last step.

  Applied with the Transformer's own params (the same module paths,
  'embed_tokens' if tied, else 'lm_head'; other entries are ignored):

    hidden = model.apply({'params': p}, tokens, hidden_only=True)  # [B, T, D]
    logits = Unembed(cfg).apply({'params': p}, hidden[:, :128])  # [B, 128, V]
  """

  config: TransformerConfig

  @nn.compact
  def __call__(self, hidden: Array) -> Array:
    cfg = self.config
    unembed = (_embed_tokens(cfg).attend if cfg.tie_embeddings
               else _lm_head(cfg))
    return token_major(unembed, hidden).astype(jnp.float32)


def _remat_layer(cfg: TransformerConfig, prevent_cse: bool) -> type:
  """DecoderLayer, rematerialized per layer as `cfg.remat` says."""
  if cfg.remat == 'none':
    return DecoderLayer
  policy = (jax.checkpoint_policies.dots_with_no_batch_dims_saveable
            if cfg.remat == 'dots' else None)
  return nn.remat(DecoderLayer, policy=policy, prevent_cse=prevent_cse)


def _scan_layers(cfg: TransformerConfig, x: Array, rope: RopeTables,
                 mask: Array | None, layer_cache: LayerCache | None
                 ) -> tuple[Array, LayerCache | None]:
  """The layers as one `nn.scan` over stacked params (`scan_layers=True`).

  Called inside `Transformer.__call__` (a compact method), so the scanned
  module is its child 'layers'. Training: the carry is x [B, T, D] and remat
  applies per layer inside the loop body. Cache mode: the carry also holds the
  whole stacked cache k, v [L, B, S, K, D], and the scanned-over input is the
  layer index (traced), so each layer writes and reads its slice of the
  stacked arrays in place (dynamic_update_slice / dynamic_slice), exactly as
  the unrolled model does with a static index: no per-layer copy of the cache.
  """
  if layer_cache is None:
    # prevent_cse is not needed inside a scan (and blocks optimizations).
    layer = _remat_layer(cfg, prevent_cse=False)(cfg, name='layers')
  else:
    layer = DecoderLayer(cfg, name='layers')  # No remat when decoding.
  lc = layer_cache

  def body(module, carry, index, rope, mask):
    if lc is None:
      return module(carry, rope, mask), None
    h, k, v = carry
    h, out = module(h, rope, mask,
                    dataclasses.replace(lc, k=k, v=v, layer=index))
    return (h, out.k, out.v), None

  # Every variable collection is stacked: params, and the LoRA adapters that
  # `jaxreason.models.lora` passes as the 'lora' collection.
  scan = nn.scan(
      body, variable_axes={True: 0},
      split_rngs={'params': True, 'dropout': True},
      in_axes=(0, nn.broadcast, nn.broadcast), length=cfg.num_layers,
      metadata_params={nn.PARTITION_NAME: 'layers'})
  index = jnp.arange(cfg.num_layers, dtype=jnp.int32)  # [L]
  if lc is None:
    x, _ = scan(layer, x, index, rope, mask)
    return x, None
  (x, k, v), _ = scan(layer, (x, lc.k, lc.v), index, rope, mask)
  return x, dataclasses.replace(lc, k=k, v=v)


def init_params(config: TransformerConfig, rng: Array) -> Any:
  """Unboxed random parameters (small models; big ones: train/state.py)."""
  tokens = jnp.zeros((1, 1), jnp.int32)
  return nn.unbox(Transformer(config).init(rng, tokens)['params'])


def abstract_params(config: TransformerConfig) -> Any:
  """Boxed ShapeDtypeStructs of the parameters (nothing is allocated)."""
  tokens = jax.ShapeDtypeStruct((1, 1), jnp.int32)
  return jax.eval_shape(
      lambda r, t: Transformer(config).init(r, t)['params'],
      jax.ShapeDtypeStruct((2,), jnp.uint32), tokens)
