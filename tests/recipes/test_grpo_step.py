"""The GRPO step on meshes equals the single-device step; TRL accumulation.

The step is the recipe's own (`grpo.build`): the policy's state and the
frozen reference sharded by the logical rules, the reference log-probs
computed inside the jitted step. Gradient accumulation is checked against
NumPy written from TRL's semantics (each micro-batch's loss / the number of
micro-batches; bnpo normalised by the micro-batch's own tokens).
"""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxreason.recipes import grpo
from jaxreason.sharding.mesh import make_mesh
from jaxreason.train.state import create_train_state
from jaxreason.train.step import batch_sharding, make_train_step

REPO = pathlib.Path(__file__).resolve().parents[2]
MESHES = [(1, 8, 1), (2, 2, 2), (8, 1, 1)]


def _config():
  spec = importlib.util.spec_from_file_location(
      'grpo_cfg', REPO / 'configs/grpo/synthetic.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config('debug')  # beta 0.04, mu 2, a tiny random policy.
  c.data.num_eval = 0
  c.optim.update(lr=1e-2, warmup_steps=0)  # Step 2 sees a moved policy.
  c.grad_accum_steps = 2
  return c


def _batch(g, seed):
  rng = np.random.default_rng(seed)
  n, w = g.num_rows, g.width
  mask = np.zeros((n, w - 1), np.float32)
  for i in range(n):  # Completions of different lengths after the prompt.
    mask[i, 10:10 + 3 + 2 * i] = 1.0
  return {
      'tokens': rng.integers(3, g.model_cfg.vocab_size, (n, w)).astype(
          np.int32),
      'mask': mask,
      'old_logps': (-3.0 + 0.1 * rng.normal(size=(n, w - 1))).astype(
          np.float32),
      'advantages': rng.normal(size=n).astype(np.float32),
  }


def _run(mesh, steps=2):
  g, state, frozen = grpo.build(_config(), mesh=mesh)
  assert frozen is not None and g.frozen_shardings is not None
  out = []
  for s in range(steps):
    batch = jax.device_put(_batch(g, s), g.batch_sh)
    state, metrics = g.train_step(state, batch, grpo.step_rng(g, s), frozen)
    out.append(jax.device_get(metrics))
  return g, state, frozen, out


@pytest.fixture(scope='module')
def single_device_run():
  return _run(make_mesh([('data', 1), ('fsdp', 1), ('tensor', 1)],
                        devices=jax.devices()[:1]))


@pytest.mark.parametrize('shape', MESHES)
def test_grpo_step_on_mesh_matches_single_device(shape, single_device_run):
  assert jax.device_count() == 8
  mesh = make_mesh(list(zip(('data', 'fsdp', 'tensor'), shape)))
  g, state, frozen, metrics = _run(mesh)
  _, ref_state, ref_frozen, ref_metrics = single_device_run
  assert metrics[1]['kl'] > 0  # The reference is exercised.
  for m, r in zip(metrics, ref_metrics):
    assert set(m) == set(r)
    for k in r:
      np.testing.assert_allclose(m[k], r[k], atol=1e-5, rtol=1e-5, err_msg=k)
  for a, b in ((state.params, ref_state.params), (frozen, ref_frozen)):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(
        np.asarray(x), np.asarray(y), atol=1e-5, rtol=0), a, b)
  # The reference really is sharded like the policy, on this mesh.
  q = lambda p: p['layers_0']['self_attn']['q_proj']['kernel']
  assert q(frozen).sharding == q(state.params).sharding
  assert q(frozen).sharding.mesh.shape == mesh.shape
  if shape[1] > 1:
    assert q(frozen).sharding.spec[0] == 'fsdp'
  if shape[2] > 1:
    assert q(frozen).sharding.spec[1] == 'tensor'
  # The frozen reference was not donated with the state, nor trained.
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(
      np.asarray(x), np.asarray(y)), frozen,
               grpo.load_policy_or_init(g.config)[1])


def test_single_device_step_reads_frozen_reference(single_device_run):
  """A different reference changes the loss only through the KL term."""
  g, state, frozen, _ = single_device_run
  batch = jax.device_put(_batch(g, 0), g.batch_sh)
  copy = lambda t: jax.tree.map(jnp.copy, t)
  _, m_same = g.train_step(copy(state), batch, grpo.step_rng(g, 5), frozen)
  _, m_policy = g.train_step(copy(state), batch, grpo.step_rng(g, 5),
                             copy(state.params))
  # The state's params have moved from the initial ones: against the policy
  # itself the KL is exactly 0, against the frozen reference it is not.
  assert float(m_policy['kl']) == pytest.approx(0.0, abs=1e-7)
  assert float(m_same['kl']) > 1e-6


# Gradient accumulation: TRL semantics, against NumPy -------------------------

V, W, N = 7, 12, 8


def _bigram_policy():
  """logits[n, t] = emb[tokens[n, t]]: gradients simple to write in NumPy."""
  return grpo.PolicyFns(apply=lambda p, t, rng: p['emb'][t], reference=None,
                        sampling_params=lambda p: p)


def _np_log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _np_trl_step(emb, tokens, mask, adv, loss_type, accum):
  """TRL's loss and gradient (mu = 1, beta = 0, so ratio = 1 and
  d loss_t / d emb[a] = -A (onehot(b) - softmax(emb[a])) for the token
  pair a -> b), micro-batch m taking rows m, m + accum, ... (the step's
  split). Returns (loss, grad)."""
  probs = np.exp(_np_log_softmax(emb))
  micro = [np.arange(m, N, accum) for m in range(accum)]
  total_tokens = mask.sum()
  losses, grads = [], []
  for rows in micro:
    g = np.zeros_like(emb)
    value = 0.0
    for n in rows:
      for t in range(W - 1):
        if not mask[n, t]:
          continue
        a, b = tokens[n, t], tokens[n, t + 1]
        value += -adv[n]
        g[a] += -adv[n] * (np.eye(V)[b] - probs[a])
    if loss_type == 'bnpo':  # Its own tokens; micro-batches equal.
      norm, weight = mask[rows].sum(), 1.0 / accum
    else:  # dapo: the tokens of the whole batch; the micro-losses add up.
      norm, weight = total_tokens, 1.0
    losses.append(weight * value / norm)
    grads.append(weight * g / norm)
  return sum(losses), sum(grads)


@pytest.mark.parametrize('loss_type', ['bnpo', 'dapo'])
def test_accumulation_follows_trl(loss_type):
  rng = np.random.default_rng(0)
  emb0 = rng.normal(size=(V, V)).astype(np.float32)
  tokens = rng.integers(0, V, (N, W)).astype(np.int32)
  mask = np.zeros((N, W - 1), np.float32)
  for n in range(N):  # Even rows (micro-batch 0) long, odd rows short.
    mask[n, 2:(W - 1 if n % 2 == 0 else 4)] = 1.0
  adv = rng.normal(size=N).astype(np.float32)
  config = ml_collections.ConfigDict(dict(
      loss_type=loss_type, temperature=1.0, num_iterations=1, beta=0.0,
      epsilon_low=0.2, epsilon_high=0.2, max_new_tokens=W))
  loss_fn = grpo.make_loss_fn(None, config, _bigram_policy())
  mesh = make_mesh([('data', 2), ('fsdp', 4), ('tensor', 1)])
  state, sh = create_train_state(
      lambda r: {'emb': jnp.asarray(emb0)}, lambda m: optax.sgd(1.0),
      jax.random.key(0), mesh)
  step = make_train_step(loss_fn, sh, mesh, grad_accum_steps=2)
  batch = jax.device_put({'tokens': tokens, 'mask': mask, 'advantages': adv,
                          'old_logps': np.zeros_like(mask)},
                         batch_sharding(mesh))
  state, metrics = step(state, batch, jax.random.key(1))
  want_loss, want_grad = _np_trl_step(emb0.astype(np.float64), tokens, mask,
                                      adv, loss_type, accum=2)
  np.testing.assert_allclose(float(metrics['loss']), want_loss, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(np.asarray(state.params['emb']),
                             emb0 - want_grad, rtol=1e-5, atol=1e-6)
  # The two differ here (micro-batches of unequal token counts): the test
  # can tell bnpo's per-micro-batch normalisation from a whole-batch mean.
  full_mean = (-adv[:, None] * mask).sum() / mask.sum()
  if loss_type == 'bnpo':
    assert abs(want_loss - full_mean) > 1e-3
  else:
    np.testing.assert_allclose(want_loss, full_mean, rtol=1e-6)
