"""The jitted train step: `train_step(state, batch, rng[, frozen]) -> (state, metrics)`.

`loss_fn(params, batch, rng, frozen) -> (loss, metrics)` is any pure loss
(SFT, DPO, GRPO ...). `frozen` holds parameters that do not train (a reference
policy, a verifier): a separate, non-donated argument. If the metrics contain
`loss_weight` (e.g. the number of target tokens), gradient accumulation weighs
micro-batches by it, so accumulating gives exactly the full-batch gradient of
a token-mean loss.

Several optimised parameter groups (`state.ParamGroups`, e.g. a world model,
a policy and a value function with their own optimisers): `groups` names the
ones a step differentiates and updates; `loss_fn` still sees all params.
`after_update(state, metrics) -> state` then updates what no gradient
touches (an EMA target network, a running statistic in params).
Disjoint groups whose losses are evaluated at the same (pre-update) params,
as soft actor-critic's actor, critic and temperature, are one step of the
sum of their losses: with stop_gradient on what a group's loss must not
train, each group's gradient of the sum is that of its own loss
(imitation/sac.py). `group_grad_norms=True` then also reports each group's
gradient norm as `grad_norm/<group>`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxreason.sharding import rules as rules_lib
from jaxreason.train.state import TrainState

LossFn = Callable[[Any, Any, jax.Array, Any], tuple[jax.Array, dict]]


def batch_sharding(mesh: Mesh,
                   rules: rules_lib.LogicalRules = rules_lib.DEFAULT_RULES
                   ) -> NamedSharding:
  """Prefix sharding for a batch pytree whose leaves are [B, ...]."""
  axes = dict(rules)['act_batch']
  axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
  axes = tuple(a for a in axes if mesh.shape[a] > 1)
  return NamedSharding(mesh, P(axes if axes else None))


def _trainable_only(tree: Any, state: TrainState) -> Any:
  if state.trainable is None:
    return tree
  return jax.tree.map(lambda x, t: x if t else jnp.zeros((), x.dtype),
                      tree, state.trainable.tree)


def _split_micro(batch: Any, n: int) -> Any:
  """[B, ...] -> [n, B/n, ...] with micro-batch i taking rows i, i+n, ...

  Strided rather than contiguous so each micro-batch stays spread evenly over
  the devices that hold the batch (no resharding).
  """

  def split(x):
    if x.shape[0] % n:
      raise ValueError(f'batch dimension {x.shape[0]} is not divisible by '
                       f'grad_accum_steps={n}')
    return jnp.swapaxes(x.reshape(x.shape[0] // n, n, *x.shape[1:]), 0, 1)

  return jax.tree.map(split, batch)


def make_train_step(
    loss_fn: LossFn,
    state_shardings: TrainState,
    mesh: Mesh,
    *,
    schedule: Callable[[Any], Any] | None = None,
    rules: rules_lib.LogicalRules = rules_lib.DEFAULT_RULES,
    grad_accum_steps: int = 1,
    frozen_shardings: Any = None,
    donate: bool = True,
    groups: tuple[str, ...] | None = None,
    after_update: Callable[[TrainState, dict], TrainState] | None = None,
    group_grad_norms: bool = False,
) -> Callable[..., tuple[TrainState, dict]]:
  """Builds the jitted, sharded, donating train step.

  Metrics are a flat dict of float32 scalars: loss, grad_norm, param_norm,
  learning_rate, plus whatever `loss_fn` reports. With `groups` (params a
  dict of groups), only those groups get gradients and an optimiser step;
  grad_norm and param_norm are theirs, and with `group_grad_norms`
  `grad_norm/<group>` is each one's.
  """
  if group_grad_norms and groups is None:
    raise ValueError('group_grad_norms needs `groups`')

  def differentiated(params):
    return params if groups is None else {g: params[g] for g in groups}

  def grads_and_metrics(params, batch, rng, frozen):
    def loss_of(sub):
      full = sub if groups is None else {**params, **sub}
      return loss_fn(full, batch, rng, frozen)

    (loss, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(
        differentiated(params))
    metrics = dict(metrics, loss=loss)
    weight = jnp.asarray(metrics.pop('loss_weight', 1.0), jnp.float32)
    return grads, metrics, weight

  def step(state: TrainState, batch: Any, rng: jax.Array, frozen: Any = None):
    with rules_lib.activation_sharding(mesh, rules):
      rng = jax.random.fold_in(rng, state.step)
      if grad_accum_steps == 1:
        grads, metrics, _ = grads_and_metrics(state.params, batch, rng, frozen)
      else:
        micro = _split_micro(batch, grad_accum_steps)
        zero_grads = jax.tree.map(jnp.zeros_like, differentiated(state.params))

        def body(carry, xs):
          acc_g, acc_m, acc_w = carry
          mb, i = xs
          g, m, w = grads_and_metrics(state.params, mb,
                                      jax.random.fold_in(rng, i), frozen)
          acc_g = jax.tree.map(lambda a, b: a + w * b, acc_g, g)
          acc_m = jax.tree.map(lambda a, b: a + w * b, acc_m, m)
          return (acc_g, acc_m, acc_w + w), None

        m_shape = jax.eval_shape(
            lambda: grads_and_metrics(
                state.params, jax.tree.map(lambda x: x[0], micro), rng,
                frozen)[1])
        zero_m = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32),
                              m_shape)
        (grads, metrics, total_w), _ = jax.lax.scan(
            body, (zero_grads, zero_m, jnp.zeros((), jnp.float32)),
            (micro, jnp.arange(grad_accum_steps)))
        grads = jax.tree.map(lambda g: g / total_w, grads)
        metrics = jax.tree.map(lambda m: m / total_w, metrics)

      grad_norm = optax.global_norm(_trainable_only(grads, state))
      new_state = state.apply_gradients(grads)
      metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
      metrics['grad_norm'] = grad_norm
      if group_grad_norms:
        metrics.update({f'grad_norm/{g}': optax.global_norm(grads[g])
                        for g in groups})
      metrics['param_norm'] = optax.global_norm(
          _trainable_only(differentiated(new_state.params), new_state))
      if after_update is not None:
        new_state = after_update(new_state, metrics)
      if schedule is not None:
        metrics['learning_rate'] = jnp.asarray(schedule(state.step),
                                               jnp.float32)
    return new_state, metrics

  replicated = NamedSharding(mesh, P())
  in_shardings = [state_shardings, batch_sharding(mesh, rules), replicated]
  if frozen_shardings is not None:
    in_shardings.append(frozen_shardings)
  return jax.jit(
      step,
      in_shardings=tuple(in_shardings),
      out_shardings=(state_shardings, replicated),
      donate_argnums=(0,) if donate else ())
