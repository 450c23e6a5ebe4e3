"""Parameter layouts: per-layer (`layers_0`, `layers_1`, ...) <-> stacked.

The unrolled Transformer keeps one subtree per layer, `layers_{i}/...`; with
`TransformerConfig(scan_layers=True)` the layers are one `nn.scan` whose
parameters live under `layers/...` with a leading [L] axis (logical name
'layers'). These helpers convert any tree keyed that way: model params,
LoRA adapters, optimizer moments shaped like the params.

  stacked = stack_layers(params)        # layers_0..L-1 -> layers [L, ...]
  params = unstack_layers(stacked)      # and back

NumPy leaves stay NumPy (checkpoint conversion on the host), ShapeDtypeStructs
stay abstract (nothing is allocated); anything else is stacked with jnp (works
under jit). `nn.Partitioned` boxes are stacked too,
with 'layers' prepended to their names.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LAYERS = 'layers'  # Key of the stacked subtree and logical axis name.
_LAYER_KEY = re.compile(r'^layers_(\d+)$')


def _stack(leaves: list[Any]) -> Any:
  if isinstance(leaves[0], nn.Partitioned):
    value = _stack([leaf.value for leaf in leaves])
    return leaves[0].replace(value=value, names=(LAYERS,) + tuple(
        leaves[0].names))
  if all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves):
    return jax.ShapeDtypeStruct((len(leaves),) + tuple(leaves[0].shape),
                                leaves[0].dtype)
  if all(isinstance(x, np.ndarray) for x in leaves):
    return np.stack(leaves)
  return jnp.stack(leaves)


def _unstack(x: Any, i: int) -> Any:
  if isinstance(x, nn.Partitioned):
    if not x.names or x.names[0] != LAYERS:
      raise ValueError(f'stacked leaf has names {x.names}, expected a leading '
                       f'{LAYERS!r} axis')
    return x.replace(value=_unstack(x.value, i), names=tuple(x.names[1:]))
  if isinstance(x, jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct(tuple(x.shape[1:]), x.dtype)
  return x[i]


def is_stacked(params: Mapping[str, Any]) -> bool:
  """Whether a tree has the stacked `layers` subtree (scan_layers layout)."""
  return LAYERS in params


def stack_layers(params: Mapping[str, Any]) -> dict[str, Any]:
  """Per-layer tree (`layers_0`, ...) -> stacked tree (`layers`, [L, ...]).

  Keys other than `layers_{i}` are kept as they are. Raises if the layer
  indices are not 0..L-1 or the layers do not have the same structure.
  """
  params = dict(params)
  found = {int(m.group(1)): k for k in params
           if (m := _LAYER_KEY.match(k))}
  if not found:
    raise ValueError(f'no layers_<i> keys to stack in {sorted(params)}')
  if sorted(found) != list(range(len(found))):
    raise ValueError(f'layer indices {sorted(found)} are not 0..{len(found)-1}')
  layers = [params.pop(found[i]) for i in range(len(found))]
  is_leaf = lambda x: isinstance(x, nn.Partitioned)
  treedef = jax.tree.structure(layers[0], is_leaf=is_leaf)
  for i, layer in enumerate(layers):
    if jax.tree.structure(layer, is_leaf=is_leaf) != treedef:
      raise ValueError(f'layers_{i} differs in structure from layers_0')
  params[LAYERS] = jax.tree.map(lambda *xs: _stack(list(xs)), *layers,
                                is_leaf=is_leaf)
  return params


def unstack_layers(params: Mapping[str, Any]) -> dict[str, Any]:
  """Stacked tree (`layers`, [L, ...]) -> per-layer tree (`layers_{i}`)."""
  params = dict(params)
  if LAYERS not in params:
    raise ValueError(f'no {LAYERS!r} subtree to unstack in {sorted(params)}')
  stacked = params.pop(LAYERS)
  is_leaf = lambda x: isinstance(x, nn.Partitioned)
  sizes = {(x.value if is_leaf(x) else x).shape[0]
           for x in jax.tree.leaves(stacked, is_leaf=is_leaf)}
  if len(sizes) != 1:
    raise ValueError(f'stacked leaves disagree on the number of layers: '
                     f'{sorted(sizes)}')
  for i in range(sizes.pop()):
    params[f'layers_{i}'] = jax.tree.map(lambda x: _unstack(x, i), stacked,
                                         is_leaf=is_leaf)
  return params
