r"""World-model throughput: ELBO train steps/s and imagination rollouts/s.

  JAX_PLATFORMS=cpu python tools/bench_world_model.py \
      --obs_dim=24 --action_dim=6 --batch=16 --length=50 --steps=5 \
      --output=benchmarks/world_model_cpu.json
  # Quick check:
  JAX_PLATFORMS=cpu python tools/bench_world_model.py --batch=4 --length=10 \
      --deter=32 --stoch=8 --hidden=32 --mlp_hidden=32 --steps=2

Three jitted workloads on a state-observation `WorldModel` (random data; the
numbers do not depend on it):

* train: `world_model_loss` (negative ELBO + reward regression) under
  `value_and_grad`, then an optax adam update of all parameters, donated.
  steps/s and frames/s (= steps/s * batch * length).
* imagine: `aime.imagine_rollout` of `--horizon` steps from `--starts`
  posterior-like start states with a tanh-Gaussian MLP policy, forward only.
  rollouts/s = starts / time.
* actor_critic: `aime.actor_critic_losses` (rollout, reward head, lambda-
  returns, target critic) under `value_and_grad` w.r.t. policy and critic,
  plus adam; updates/s and imagined states/s.

The first call of each (compilation) is timed apart and not counted; then
`--warmup` untimed and `--steps` timed calls; the median time is reported.
The load average is recorded: the machine may be shared.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import time

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreason.imitation import aime
from jaxreason.models.world_model import (RSSMConfig, WorldModel,
                                          WorldModelConfig, world_model_fns,
                                          world_model_loss)

_OBS_DIM = flags.DEFINE_integer('obs_dim', 24, 'State observation size.')
_ACTION_DIM = flags.DEFINE_integer('action_dim', 6, 'Action size.')
_BATCH = flags.DEFINE_integer('batch', 16, 'Sequences per train step.')
_LENGTH = flags.DEFINE_integer('length', 50, 'Steps per sequence.')
_DETER = flags.DEFINE_integer('deter', 200, 'RSSM deterministic size.')
_STOCH = flags.DEFINE_integer('stoch', 30, 'RSSM stochastic size.')
_HIDDEN = flags.DEFINE_integer('hidden', 200, 'RSSM hidden size.')
_MLP_HIDDEN = flags.DEFINE_integer('mlp_hidden', 256,
                                   'Encoder/decoder/head/policy width.')
_EMBED = flags.DEFINE_integer('embed', 256, 'Encoder output size.')
_HORIZON = flags.DEFINE_integer('horizon', 15, 'Imagination horizon.')
_STARTS = flags.DEFINE_integer('starts', 0,
                               'Imagination start states (0: batch * length).')
_STEPS = flags.DEFINE_integer('steps', 5, 'Timed calls per workload.')
_WARMUP = flags.DEFINE_integer('warmup', 1, 'Untimed calls after compiling.')
_SEED = flags.DEFINE_integer('seed', 0, 'Init and data seed.')
_OUTPUT = flags.DEFINE_string('output', 'benchmarks/world_model_cpu.json',
                              'JSON results.')


class Policy(nn.Module):
  """Tanh-Gaussian MLP policy on world-model features."""
  action_dim: int
  hidden: int

  @nn.compact
  def __call__(self, feats, rng):
    x = nn.elu(nn.Dense(self.hidden)(feats))
    x = nn.elu(nn.Dense(self.hidden)(x))
    mean, log_std = jnp.split(nn.Dense(2 * self.action_dim)(x), 2, -1)
    log_std = jnp.clip(log_std, -5.0, 2.0)
    eps = jax.random.normal(rng, mean.shape)
    u = mean + jnp.exp(log_std) * eps
    log_prob = (-0.5 * eps**2 - log_std - 0.5 * np.log(2 * np.pi)
                - 2.0 * (np.log(2.0) - u - jax.nn.softplus(-2.0 * u))).sum(-1)
    return jnp.tanh(u), log_prob


class Value(nn.Module):
  hidden: int

  @nn.compact
  def __call__(self, feats):
    x = nn.elu(nn.Dense(self.hidden)(feats))
    x = nn.elu(nn.Dense(self.hidden)(x))
    return nn.Dense(1)(x)[..., 0]


def time_calls(fn, args_fn, steps, warmup):
  """(compile_s, median_s): first call, then warmup and timed calls."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args_fn()))
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    jax.block_until_ready(fn(*args_fn()))
  times = []
  for _ in range(steps):
    args = args_fn()
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return compile_s, statistics.median(times)


def main(argv):
  del argv
  b, t, a = _BATCH.value, _LENGTH.value, _ACTION_DIM.value
  cfg = WorldModelConfig(
      obs_dim=_OBS_DIM.value, action_dim=a,
      rssm=RSSMConfig(_DETER.value, _STOCH.value, _HIDDEN.value),
      embed_dim=_EMBED.value, mlp_hidden=_MLP_HIDDEN.value,
      head_hidden=_MLP_HIDDEN.value, reward_head=True)
  model = WorldModel(cfg)
  rng = np.random.default_rng(_SEED.value)
  first = np.zeros((b, t), bool)
  first[:, 0] = True
  batch = {
      'obs': jnp.asarray(rng.normal(size=(b, t, cfg.obs_dim)), jnp.float32),
      'action': jnp.asarray(rng.uniform(-1, 1, (b, t, a)), jnp.float32),
      'is_first': jnp.asarray(first),
      'reward': jnp.asarray(rng.normal(size=(b, t)), jnp.float32),
  }
  key = jax.random.key(_SEED.value)
  params = jax.jit(model.init)(key, batch['obs'], batch['action'],
                               batch['is_first'], key)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  opt = optax.adam(3e-4)
  results = {}

  # -- world-model training ---------------------------------------------------
  loss_fn = functools.partial(world_model_loss, model)

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def train_step(params, opt_state, batch, key):
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch, key)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  state = {'params': params, 'opt': opt.init(params), 'i': 0}

  def train_args():
    state['i'] += 1
    return (state['params'], state['opt'], batch,
            jax.random.fold_in(key, state['i']))

  def train_call(*args):
    state['params'], state['opt'], loss = train_step(*args)
    return loss

  compile_s, sec = time_calls(train_call, train_args, _STEPS.value,
                              _WARMUP.value)
  results['train'] = {'compile_s': compile_s, 'step_s': sec,
                      'steps_per_s': 1 / sec, 'frames_per_s': b * t / sec}
  params = state['params']

  # -- imagination ------------------------------------------------------------
  fns = world_model_fns(model)
  n = _STARTS.value or b * t
  policy, value = Policy(a, _MLP_HIDDEN.value), Value(_MLP_HIDDEN.value)
  feats = jnp.zeros((n, cfg.feature_dim))
  pol_params = policy.init(key, feats, key)
  val_params = value.init(key, feats)
  policy_fn = policy.apply
  value_fn = value.apply
  post, _ = jax.jit(functools.partial(model.apply, method=WorldModel.observe))(
      params, batch['obs'], batch['action'], batch['is_first'], key)
  start = jax.tree.map(lambda x: x[:n], aime.flatten_states(post))
  if jax.tree.leaves(start)[0].shape[0] < n:
    raise ValueError(f'--starts={n} exceeds batch * length = {b * t}')

  @jax.jit
  def imagine(pol_params, start, key):
    return aime.imagine_rollout(params, fns, pol_params, policy_fn, start,
                                _HORIZON.value, key).features

  compile_s, sec = time_calls(
      imagine, lambda: (pol_params, start, jax.random.fold_in(key, 1)),
      _STEPS.value, _WARMUP.value)
  results['imagine'] = {'compile_s': compile_s, 'call_s': sec,
                        'rollouts_per_s': n / sec,
                        'states_per_s': n * _HORIZON.value / sec}

  # -- actor-critic update ----------------------------------------------------
  ac_params = {'policy': pol_params, 'value': val_params}
  ac_opt_state = opt.init(ac_params)

  @jax.jit
  def ac_step(ac_params, opt_state, key):
    def loss(p):
      return aime.actor_critic_losses(
          params, p['policy'], p['value'], p['value'], fns, policy_fn,
          value_fn, start, key, horizon=_HORIZON.value)
    (loss_val, _), grads = jax.value_and_grad(loss, has_aux=True)(ac_params)
    updates, opt_state = opt.update(grads, opt_state, ac_params)
    return optax.apply_updates(ac_params, updates), opt_state, loss_val

  compile_s, sec = time_calls(
      ac_step, lambda: (ac_params, ac_opt_state, jax.random.fold_in(key, 2)),
      _STEPS.value, _WARMUP.value)
  results['actor_critic'] = {'compile_s': compile_s, 'step_s': sec,
                             'steps_per_s': 1 / sec,
                             'states_per_s': n * _HORIZON.value / sec}

  out = {
      'config': {
          'obs_dim': cfg.obs_dim, 'action_dim': a, 'batch': b, 'length': t,
          'deter': _DETER.value, 'stoch': _STOCH.value,
          'hidden': _HIDDEN.value, 'mlp_hidden': _MLP_HIDDEN.value,
          'embed': _EMBED.value, 'horizon': _HORIZON.value, 'starts': n,
          'steps': _STEPS.value, 'warmup': _WARMUP.value,
          'world_model_params': int(n_params)},
      'results': results,
      'env': {'jax': jax.__version__, 'backend': jax.default_backend(),
              'devices': str(jax.devices()), 'cpu_count': os.cpu_count(),
              'platform': platform.platform(),
              'loadavg': list(os.getloadavg()),
              'xla_flags': os.environ.get('XLA_FLAGS', '')},
  }
  print(f'world model: {n_params:,} params, batch {b} x length {t}, '
        f'horizon {_HORIZON.value}, {n} starts; load {os.getloadavg()[0]:.1f}')
  print(f'{"workload":<14}{"compile s":>11}{"call ms":>10}{"calls/s":>10}'
        f'{"throughput":>24}')
  for name, r in results.items():
    call = r.get('step_s', r.get('call_s'))
    if name == 'train':
      tput = f'{r["frames_per_s"]:,.0f} frames/s'
    elif name == 'imagine':
      tput = f'{r["rollouts_per_s"]:,.0f} rollouts/s'
    else:
      tput = f'{r["states_per_s"]:,.0f} states/s'
    print(f'{name:<14}{r["compile_s"]:>11.1f}{1e3 * call:>10.1f}'
          f'{1 / call:>10.2f}{tput:>24}')
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(_OUTPUT.value) or '.', exist_ok=True)
    with open(_OUTPUT.value, 'w') as f:
      json.dump(out, f, indent=2)
    print(f'wrote {_OUTPUT.value}')


if __name__ == '__main__':
  app.run(main)
