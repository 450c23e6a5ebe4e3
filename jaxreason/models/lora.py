"""LoRA adapters for the Transformer, pure-functional (the module is unchanged).

  lora_cfg = LoraConfig(rank=8, alpha=16.0, dropout=0.05)
  params = init_params(model_cfg, lora_cfg, rng, base_params=pretrained)
  apply = apply_fn(model_cfg, lora_cfg)
  logits = apply(params, tokens, rng=rng, deterministic=False)  # adapted, train
  ref = apply(params, tokens, adapters=False)                  # the base model
  sampler_params = merge(params, lora_cfg)                      # plain params
  export_merged('/out/hf', model_cfg, params, lora_cfg)         # HF folder

Params are `{'base': <Transformer params>, 'lora': <adapters>}`. The adapters
mirror the module tree of the layers they adapt: for the kernel at
`layers_0/self_attn/q_proj/kernel`, `lora['layers_0']['self_attn']['q_proj']`
is `{'a': A, 'b': B}` (nested dicts rather than '/'-joined keys, so that
checkpoints and `flax.traverse_util` see ordinary module paths).

Shapes. A kernel is [in..., out...] (the Dense / DenseGeneral layout: q_proj
[D, H, Dh], o_proj [H, Dh, D], gate_proj [D, F]). A is [in..., r] and B is
[r, out...]: the in and out dimensions are kept, not flattened, so A and B
carry the kernel's own logical axis names (A: (<in axes>, None), B:
(None, <out axes>); the rank dimension is replicated) and shard like it.
`tensordot(A, B, 1)` has the kernel's shape; flattened, A is PEFT's
`lora_A.weight.T` [in, r] and B its `lora_B.weight.T` [r, out].

Numerics (as PEFT): A ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in the
product of the in dimensions, B = 0, so a fresh adapter leaves the model
unchanged. A targeted layer computes

  y = x @ W (+ bias) + (alpha / rank) * dropout(x) @ A @ B

through `flax.linen.intercept_methods` on the Dense / DenseGeneral call, so
the dropout is LoRA dropout on the adapter input only, and `merge` gives
W + (alpha / rank) * A @ B, the same function without dropout.

Targets are regular expressions, `re.search`ed in the '/'-joined kernel path
('layers_3/self_attn/q_proj/kernel'); only kernels of Dense / DenseGeneral
layers that contract their input's trailing axes can be adapted (all of the
Transformer's, lm_head included; embeddings cannot). A pattern matching
nothing is an error (a typo would otherwise train nothing).

scan_layers. With `TransformerConfig(scan_layers=True)` a layer kernel is
stacked, `layers/mlp/up_proj/kernel` [L, in..., out...], and so are its
adapters: A [L, in..., r], B [L, r, out...] (logical names 'layers' first),
i.e. `layout.stack_layers` of the unrolled model's adapters. Patterns are
still matched against the per-layer paths 'layers_{i}/...', so configs work
for both layouts; a pattern that picks some layers but not all cannot be
applied to stacked kernels and is an error. The adapters reach the model as
the 'lora' variable collection, which the model's `nn.scan` slices per layer
like the params; dropout keys are folded with the layer index.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Any, Callable, Mapping

import flax.core
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreason.models import hf
from jaxreason.models import layout
from jaxreason.models.transformer import Transformer, TransformerConfig

Array = jax.Array
Params = Any
Path = tuple[str, ...]

DEFAULT_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj',
                   'up_proj', 'down_proj')


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  """rank r, scale alpha / r, dropout on the adapter input, target patterns."""

  rank: int
  alpha: float = 16.0
  dropout: float = 0.0
  targets: tuple[str, ...] = DEFAULT_TARGETS

  def __post_init__(self):
    object.__setattr__(self, 'targets', tuple(self.targets))
    if self.rank < 1:
      raise ValueError(f'LoRA rank={self.rank} must be >= 1')
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f'LoRA dropout={self.dropout} must be in [0, 1)')
    if not self.targets:
      raise ValueError('LoRA targets is empty: nothing would train')
    for t in self.targets:
      re.compile(t)

  @property
  def scale(self) -> float:
    return self.alpha / self.rank


def config_from(cfg: Mapping[str, Any] | None) -> LoraConfig | None:
  """LoraConfig from `config.lora`; None (LoRA off) for None or rank 0."""
  if cfg is None:
    return None
  cfg = dict(cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg)
  if not cfg.get('rank'):
    return None
  return LoraConfig(**cfg)


# Which layers -----------------------------------------------------------------


def _dense_call(context) -> bool:
  return (context.method_name == '__call__'
          and isinstance(context.module, (nn.Dense, nn.DenseGeneral)))


@functools.lru_cache(maxsize=32)
def dense_layers(model_cfg: TransformerConfig) -> dict[Path, int | None]:
  """Module path -> number of contracted (input) axes of every dense layer.

  Found by tracing the model's init (nothing is computed). None marks a
  DenseGeneral layer that LoRA cannot adapt (contracts non-trailing axes or
  has batch dimensions).
  """
  found: dict[Path, int | None] = {}

  def record(next_fun, args, kwargs, context):
    if _dense_call(context):
      module, ndim = context.module, args[0].ndim
      if isinstance(module, nn.DenseGeneral):
        axis = module.axis if isinstance(module.axis, tuple) else (
            module.axis,)
        axis = sorted(a % ndim for a in axis)
        ok = axis == list(range(ndim - len(axis), ndim)) and not (
            module.batch_dims)
        found[module.path] = len(axis) if ok else None
      else:
        found[module.path] = 1
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(
        lambda r: Transformer(model_cfg).init(r, jnp.zeros((1, 1), jnp.int32)),
        jax.ShapeDtypeStruct((2,), jnp.uint32))
  return found


def _stacked(model_cfg: TransformerConfig, path: Path) -> bool:
  """Whether the layer at `path` has stacked params ([L, ...], scan_layers)."""
  return model_cfg.scan_layers and path[:1] == (layout.LAYERS,)


def targeted_layers(model_cfg: TransformerConfig,
                    lora_cfg: LoraConfig) -> dict[Path, int]:
  """Module path -> number of input axes, for the layers the targets match.

  A stacked layer (scan_layers) is matched through its per-layer paths
  'layers_{i}/...': all of them or none.
  """
  layers = dense_layers(model_cfg)
  kernel = lambda p: '/'.join(p + ('kernel',))

  def matches(pattern, p):
    if not _stacked(model_cfg, p):
      return bool(re.search(pattern, kernel(p)))
    hits = [bool(re.search(pattern, kernel((f'layers_{i}',) + p[1:])))
            for i in range(model_cfg.num_layers)]
    if any(hits) and not all(hits):
      raise ValueError(
          f'LoRA target {pattern!r} matches {kernel(p)} in some layers only; '
          'with scan_layers the layers are stacked: adapt all or none')
    return all(hits)

  out = {}
  for pattern in lora_cfg.targets:
    hits = [p for p in layers if matches(pattern, p)]
    if not hits:
      raise ValueError(
          f'LoRA target {pattern!r} matches no dense kernel; kernels: '
          f'{sorted(kernel(p) for p in layers)}')
    for p in hits:
      if layers[p] is None:
        raise ValueError(f'LoRA target {pattern!r} matches {kernel(p)}, whose '
                         'layer does not contract trailing input axes')
      out[p] = layers[p]
  return dict(sorted(out.items()))


# Parameters -------------------------------------------------------------------


def _get(tree: Any, path: Path) -> Any:
  for key in path:
    tree = tree[key]
  return tree


def _set(tree: dict, path: Path, value: Any) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def flat_adapters(lora: Any) -> dict[Path, tuple[Any, Any]]:
  """Flattens an adapter tree: module path -> (A, B)."""
  out = {}

  def walk(node, path):
    if isinstance(node, Mapping) and set(node) == {'a', 'b'}:
      out[path] = (node['a'], node['b'])
    elif isinstance(node, Mapping):
      for k, v in node.items():
        walk(v, path + (k,))
    else:
      raise ValueError(f'LoRA params at {"/".join(path)}: expected a dict '
                       f"with 'a' and 'b', got {type(node).__name__}")

  walk(lora, ())
  return out


def init_adapters(model_cfg: TransformerConfig, lora_cfg: LoraConfig,
                  base_params: Params, rng: Array) -> Params:
  """A (uniform, as PEFT) and B = 0 for every targeted kernel of base_params.

  If base_params are boxed (`nn.Partitioned`, e.g. straight from
  `Transformer.init`), A and B are boxed with the kernel's logical names.
  Works under `jax.eval_shape` / `jit` (shapes only are read from the base).
  """
  r = lora_cfg.rank
  out: dict = {}
  for i, (path, n_in) in enumerate(targeted_layers(model_cfg, lora_cfg)
                                   .items()):
    kernel = _get(base_params, path + ('kernel',))
    boxed = isinstance(kernel, nn.Partitioned)
    value = kernel.value if boxed else kernel
    shape, dtype = tuple(value.shape), value.dtype
    lead = 1 if _stacked(model_cfg, path) else 0  # The [L] axis, if stacked.
    in_shape, out_shape = shape[lead:lead + n_in], shape[lead + n_in:]
    bound = 1.0 / math.sqrt(math.prod(in_shape))
    a = jax.random.uniform(jax.random.fold_in(rng, i),
                           shape[:lead] + in_shape + (r,), jnp.float32,
                           -bound, bound).astype(dtype)
    b = jnp.zeros(shape[:lead] + (r,) + out_shape, dtype)
    if boxed:
      names = tuple(kernel.names)
      a = nn.Partitioned(a, names[:lead + n_in] + (None,))
      b = nn.Partitioned(b, names[:lead] + (None,) + names[lead + n_in:])
    _set(out, path, {'a': a, 'b': b})
  return out


def init_params(model_cfg: TransformerConfig, lora_cfg: LoraConfig,
                rng: Array, base_params: Params | None = None) -> Params:
  """{'base', 'lora'}; a random (boxed) base unless base_params is given.

  Boxed output is what `create_train_state` / `state_from_params` take as
  `init_params` (logical names -> shardings).
  """
  base_rng, lora_rng = jax.random.split(rng)
  if base_params is None:
    base_params = Transformer(model_cfg).init(
        base_rng, jnp.zeros((1, 1), jnp.int32))['params']
  return {'base': base_params,
          'lora': init_adapters(model_cfg, lora_cfg, base_params, lora_rng)}


def abstract_params(model_cfg: TransformerConfig,
                    lora_cfg: LoraConfig) -> Params:
  """Boxed ShapeDtypeStructs of {'base', 'lora'} (nothing is allocated)."""
  return jax.eval_shape(lambda r: init_params(model_cfg, lora_cfg, r),
                        jax.ShapeDtypeStruct((2,), jnp.uint32))


def trainable_mask(params: Params) -> Params:
  """Bools like params: adapters True, base False (a state's `trainable`)."""
  return {'base': jax.tree.map(lambda _: False, params['base']),
          'lora': jax.tree.map(lambda _: True, params['lora'])}


def merge(params: Params, lora_cfg: LoraConfig) -> Params:
  """Base-shaped params with W + (alpha / rank) * A @ B (in float32) merged.

  Pure and jittable; the result is a new tree (the base is not modified).
  """
  base = params['base']
  merged = flax.core.unfreeze(base)  # New dicts, the same leaves.
  for path, (a, b) in flat_adapters(params['lora']).items():
    kernel = _get(base, path + ('kernel',))
    product = lambda a, b: jnp.tensordot(a, b, 1)
    if kernel.ndim == a.ndim + b.ndim - 3:  # Stacked: [L, ...] each.
      product = jax.vmap(product)
    delta = product(a.astype(jnp.float32), b.astype(jnp.float32))
    if delta.shape != kernel.shape:
      raise ValueError(f'LoRA {"/".join(path)}: A {a.shape} @ B {b.shape} '
                       f'does not match the kernel {kernel.shape}')
    _set(merged, path + ('kernel',), (kernel.astype(jnp.float32)
                                      + lora_cfg.scale * delta
                                      ).astype(kernel.dtype))
  return merged


# The adapted forward pass -----------------------------------------------------


def apply_fn(model_cfg: TransformerConfig, lora_cfg: LoraConfig
             ) -> Callable[..., Any]:
  """`apply(params, tokens, positions=None, segment_ids=None, *, rng=None,
  deterministic=True, adapters=True, **kw)` -> what `Transformer.apply` gives.

  params are {'base', 'lora'}. With `adapters=False` it is the base model on
  params['base'] (the frozen reference policy of RL, from the same arrays).
  `deterministic=False` with dropout > 0 needs `rng`. Extra keywords go to
  the Transformer (e.g. `return_hidden`).
  """
  model = Transformer(model_cfg)
  scale, rate = lora_cfg.scale, lora_cfg.dropout

  def apply(params, tokens, positions=None, segment_ids=None, *, rng=None,
            deterministic=True, adapters=True, **kw):
    if not adapters:
      return model.apply({'params': params['base']}, tokens, positions,
                         segment_ids, **kw)
    flat = flat_adapters(params['lora'])
    index = {p: i for i, p in enumerate(sorted(flat))}
    use_dropout = rate > 0 and not deterministic
    if use_dropout and rng is None:
      raise ValueError('LoRA dropout with deterministic=False needs rng')
    # The adapters go in as the 'lora' collection (mirroring the module
    # tree), so lifted transforms (remat, the scan over stacked layers) hand
    # each layer its own (A, B). Stacked entries also get their layer index.
    collection: dict = {}
    for path, (a, b) in flat.items():
      entry = {'a': a, 'b': b}
      if use_dropout and _stacked(model_cfg, path):
        entry['layer'] = jnp.arange(a.shape[0], dtype=jnp.uint32)
      _set(collection, path, entry)
    used = set()

    def interceptor(next_fun, args, kwargs, context):
      module = context.module
      if not (_dense_call(context) and module.has_variable('lora', 'a')):
        return next_fun(*args, **kwargs)
      path = module.path
      used.add(path)
      x = args[0]
      a, b = module.get_variable('lora', 'a'), module.get_variable('lora', 'b')
      n_in = a.ndim - 1
      if x.shape[x.ndim - n_in:] != a.shape[:-1]:
        raise ValueError(f'LoRA {"/".join(path)}: input {x.shape} does not '
                         f'end in A\'s input dims {a.shape[:-1]}')
      y = next_fun(*args, **kwargs)  # x @ W (+ bias), [..., out...]
      if use_dropout:
        key = jax.random.fold_in(rng, index[path])
        if module.has_variable('lora', 'layer'):  # One layer of a stack.
          key = jax.random.fold_in(key, module.get_variable('lora', 'layer'))
        keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
        x = jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)
      h = jnp.tensordot(x.astype(y.dtype), a.astype(y.dtype), n_in)  # [..., r]
      delta = jnp.tensordot(h, b.astype(y.dtype), 1)  # [..., out...]
      return y + jnp.asarray(scale, y.dtype) * delta

    with nn.intercept_methods(interceptor):
      out = model.apply({'params': params['base'], 'lora': collection},
                        tokens, positions, segment_ids, **kw)
    if set(flat) - used:
      raise ValueError('LoRA adapters for layers the model does not call: '
                       f'{sorted("/".join(p) for p in set(flat) - used)}')
    return out

  return apply


# Export -----------------------------------------------------------------------


def export_merged(path: str, model_cfg: TransformerConfig, params: Params,
                  lora_cfg: LoraConfig, **save_kw) -> None:
  """Merges the adapters and writes a Hugging Face checkpoint folder.

  `save_kw` go to `hf.save_checkpoint` (dtype, max_shard_bytes).
  """
  merged = jax.jit(merge, static_argnums=1)(params, lora_cfg)
  hf.save_checkpoint(path, model_cfg, jax.device_get(merged), **save_kw)
