"""Train state and its sharded creation.

State is created as `jax.eval_shape(init)` -> shardings from the logical axis
rules -> `jax.jit(init, out_shardings=...)`, so every device materialises only
its own shard: a model that does not fit on one device can still be created.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxreason.sharding import rules as rules_lib


class Mask:
  """A hashable, static pytree of bools (e.g. which params train).

  Lives in the static part of `TrainState`, so it is never traced.
  """

  def __init__(self, tree: Any):
    self.tree = tree
    leaves, self._treedef = jax.tree.flatten(tree)
    self._key = (tuple(bool(x) for x in leaves), self._treedef)

  def __hash__(self):
    return hash(self._key)

  def __eq__(self, other):
    return isinstance(other, Mask) and self._key == other._key

  def __repr__(self):
    n = len(self._key[0])
    return f'Mask({sum(self._key[0])}/{n} trainable)'


class ParamGroups(dict):
  """Optimisers of named parameter groups: {group: GradientTransformation}.

  With a `ParamGroups` optimiser, `TrainState.params` is a dict of groups
  (e.g. {'world_model', 'policy', 'value'}) each with its own optimiser and
  state, and a step may update only some groups (`apply_gradients` with the
  grads of those). A params group without an optimiser is state the step
  carries but no gradient touches (an EMA target, a running statistic).
  Hashable (it is a static field of `TrainState`).
  """

  def __hash__(self):
    return hash(tuple(sorted(self.items())))

  def init(self, params: Any) -> dict:
    return {k: tx.init(params[k]) for k, tx in self.items()}


@flax.struct.dataclass
class TrainState:
  """step: int32 scalar; params; opt_state; static optimizer and mask.

  `tx` is one optimiser, or `ParamGroups` (then params and opt_state are
  dicts of groups; see there).
  """

  step: jax.Array
  params: Any
  opt_state: Any
  tx: optax.GradientTransformation | ParamGroups = flax.struct.field(
      pytree_node=False)
  trainable: Mask | None = flax.struct.field(pytree_node=False, default=None)

  def apply_gradients(self, grads: Any) -> 'TrainState':
    """One optimiser step; with `ParamGroups`, of the groups in `grads`."""
    if not isinstance(self.tx, ParamGroups):
      updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
      params = optax.apply_updates(self.params, updates)
      return self.replace(step=self.step + 1, params=params,
                          opt_state=opt_state)
    params, opt_state = dict(self.params), dict(self.opt_state)
    for name, g in grads.items():
      if name not in self.tx:
        raise ValueError(f'params group {name!r} has no optimiser (groups '
                         f'with one: {sorted(self.tx)})')
      updates, opt_state[name] = self.tx[name].update(
          g, self.opt_state[name], self.params[name])
      params[name] = optax.apply_updates(self.params[name], updates)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state)


def _unbox(tree):
  return nn.unbox(tree)


def state_shardings(abstract_state: TrainState, boxed_params: Any, mesh: Mesh,
                    rules: rules_lib.LogicalRules) -> TrainState:
  """Shardings for a TrainState whose params have the given logical boxes.

  Optimizer moments mirror their parameter's sharding (matched by shape
  and position through `optax.tree_map_params`); counters are replicated.
  """
  param_sh = rules_lib.param_shardings(boxed_params, mesh, rules)
  replicated = NamedSharding(mesh, P())

  masked = optax.MaskedNode

  def param_like(leaf, sharding):
    return leaf if isinstance(leaf, masked) else sharding

  def opt_shardings(tx, opt_state, param_sh):
    return optax.tree_map_params(
        tx, param_like, opt_state, param_sh,
        transform_non_params=lambda _: replicated,
        is_leaf=lambda x: isinstance(x, (NamedSharding, masked)))

  if isinstance(abstract_state.tx, ParamGroups):
    opt_sh = {k: opt_shardings(tx, abstract_state.opt_state[k], param_sh[k])
              for k, tx in abstract_state.tx.items()}
  else:
    opt_sh = opt_shardings(abstract_state.tx, abstract_state.opt_state,
                           param_sh)
  return abstract_state.replace(
      step=replicated, params=param_sh, opt_state=opt_sh)


def _make_init(init_params, tx_factory, rng, trainable):
  boxed = jax.eval_shape(init_params, rng)
  mask = None if trainable is None else Mask(trainable(_unbox(boxed)))
  tx = tx_factory(None if mask is None else mask.tree)

  def init(rng):
    params = _unbox(init_params(rng))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=tx.init(params), tx=tx, trainable=mask)

  return init, boxed


def abstract_train_state(
    init_params: Callable[[jax.Array], Any],
    tx_factory: Callable[[Any], optax.GradientTransformation],
    rng: jax.Array,
    mesh: Mesh,
    rules: rules_lib.LogicalRules = rules_lib.DEFAULT_RULES,
    trainable: Callable[[Any], Any] | None = None,
) -> tuple[TrainState, TrainState, Callable[[jax.Array], TrainState]]:
  """Shapes and shardings of the state, and its init function.

  Args:
    init_params: rng -> params, possibly boxed with logical axis names
      (`Transformer(cfg).init(rng, tokens)['params']`).
    tx_factory: trainable mask (pytree of bools or None) -> optimizer.
    rng: PRNG key for initialisation.
    mesh: device mesh.
    rules: logical-to-mesh rules.
    trainable: optional params -> pytree of bools (False = frozen).

  Returns:
    (abstract, shardings, init): `jax.ShapeDtypeStruct`s carrying their
    shardings (for AOT compilation and checkpoint restore), the sharding tree,
    and `init(rng) -> TrainState`.
  """
  init, boxed = _make_init(init_params, tx_factory, rng, trainable)
  abstract = jax.eval_shape(init, rng)
  shardings = state_shardings(abstract, boxed, mesh, rules)
  with_sh = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
      abstract, shardings)
  return with_sh, shardings, init


def create_train_state(init_params, tx_factory, rng, mesh,
                       rules=rules_lib.DEFAULT_RULES, trainable=None
                       ) -> tuple[TrainState, TrainState]:
  """Initialises a sharded TrainState; arguments as `abstract_train_state`.

  Returns (state, shardings).
  """
  _, shardings, init = abstract_train_state(
      init_params, tx_factory, rng, mesh, rules, trainable)
  return jax.jit(init, out_shardings=shardings)(rng), shardings


def param_count(params: Any) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def state_from_params(params: Any, init_params: Callable[[jax.Array], Any],
                      tx_factory: Callable[[Any], optax.GradientTransformation],
                      mesh: Mesh,
                      rules: rules_lib.LogicalRules = rules_lib.DEFAULT_RULES,
                      trainable: Callable[[Any], Any] | None = None
                      ) -> tuple[TrainState, TrainState]:
  """A fresh TrainState around given (e.g. pretrained) params.

  `init_params` is only traced (for shapes and logical axes), never run.
  Returns (state, shardings).
  """
  rng = jax.ShapeDtypeStruct((2,), jnp.uint32)
  abstract, shardings, _ = abstract_train_state(init_params, tx_factory, rng,
                                                mesh, rules, trainable)
  tx, mask = abstract.tx, abstract.trainable
  expected = jax.tree.structure(abstract.params)
  if jax.tree.structure(params) != expected:
    raise ValueError('params do not match the model structure: got '
                     f'{jax.tree.structure(params)}, expected {expected}')

  def build(params):
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=tx.init(params), tx=tx, trainable=mask)

  params = jax.device_put(params, shardings.params)
  state = jax.jit(build, in_shardings=(shardings.params,),
                  out_shardings=shardings)(params)
  return state, shardings
