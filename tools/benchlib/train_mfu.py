"""JAX-only train-step throughput and MFU on whatever device JAX has.

Used by `tools/check_kernels_gpu.sh` for the GPU check (no torch there) and
tested on the CPU at a tiny shape. The step is the library's own
(`create_train_state` + `make_train_step` with `sft_loss`, AdamW) on a
1-device mesh; FLOPs per token as `flops_per_token` (also bench_train's);
the peak is the best n^3 matmul rate jnp
reaches on the device in the compute dtype, measured here.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.losses.sft import sft_loss
from jaxreason.models.transformer import Transformer, TransformerConfig
from jaxreason.sharding.mesh import make_mesh
from jaxreason.train import optim
from jaxreason.train.state import create_train_state
from jaxreason.train.step import batch_sharding, make_train_step


def flops_per_token(cfg: TransformerConfig, seq_len: int) -> dict[str, float]:
  """Training FLOPs per token (fwd + bwd = 3x fwd), without causal savings.

  total = 6 N_matmul + 12 L T H D_head, N_matmul the weights of all matmuls
  (the output projection counted once, the embedding lookup not); the
  second term is attention's QK^T and PV (PaLM, Chowdhery et al. 2022,
  app. B).
  """
  d, f, h, k, hd = (cfg.embed_dim, cfg.mlp_dim, cfg.num_heads,
                    cfg.num_kv_heads, cfg.head_size)
  n_matmul = (cfg.num_layers * (2 * d * h * hd + 2 * d * k * hd + 3 * d * f)
              + cfg.vocab_size * d)
  attn = 12 * cfg.num_layers * seq_len * h * hd
  return {'n_matmul': n_matmul, 'dense': 6 * n_matmul, 'attention': attn,
          'total': 6 * n_matmul + attn}


def peak_matmul_flops(n: int, dtype: Any, iters: int = 10) -> float:
  """Best n x n @ n x n rate (2 n^3 FLOPs per product) of jnp, in FLOP/s."""
  key = jax.random.key(0)
  a = jax.random.normal(key, (n, n), dtype)
  b = jax.random.normal(jax.random.fold_in(key, 1), (n, n), dtype)
  mm = jax.jit(lambda x, y: x @ y)
  jax.block_until_ready(mm(a, b))
  best = float('inf')
  for _ in range(3):
    t = time.perf_counter()
    for _ in range(iters):
      out = mm(a, b)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - t) / iters)
  return 2 * n ** 3 / best


def sft_loss_fn(model: Transformer):
  """The train step's loss_fn: `sft_loss` of the model's logits."""
  def loss_fn(params, batch, rng, frozen):
    del rng, frozen
    logits = model.apply({'params': params}, batch['tokens'],
                         batch['positions'], batch['segment_ids'])
    return sft_loss(logits, batch['tokens'], batch['segment_ids'],
                    batch['loss_mask'])
  return loss_fn


def init_state(cfg: TransformerConfig, seed: int, optim_cfg: dict[str, Any]):
  """(state, shardings, mesh): a fresh AdamW train state on a 1-device mesh."""
  mesh = make_mesh([('data', 1), ('fsdp', 1), ('tensor', 1)],
                   devices=jax.devices()[:1])
  model = Transformer(cfg)
  init = lambda r: model.init(r, jnp.zeros((1, 1), jnp.int32))['params']
  tx_factory = lambda mask: optim.make_optimizer(optim_cfg, mask)[0]
  state, shardings = create_train_state(
      init, tx_factory, jax.random.PRNGKey(seed), mesh)
  return state, shardings, mesh


def random_batch(cfg: TransformerConfig, batch: int, seq_len: int, seed: int
                 ) -> dict[str, np.ndarray]:
  """Random tokens, one segment per row, every position counted."""
  rng = np.random.default_rng(seed)
  return {
      'tokens': rng.integers(0, cfg.vocab_size, (batch, seq_len)).astype(
          np.int32),
      'positions': np.broadcast_to(np.arange(seq_len, dtype=np.int32),
                                   (batch, seq_len)).copy(),
      'segment_ids': np.ones((batch, seq_len), np.int32),
      'loss_mask': np.ones((batch, seq_len), np.int32)}


def train_step_mfu(cfg: TransformerConfig, batch: int, seq_len: int,
                   steps: int = 5, warmup: int = 2, matmul_n: int = 4096,
                   seed: int = 0) -> dict[str, Any]:
  """Times `steps` train steps after `warmup`; tokens/s, MFU and losses."""
  opt = dict(name='adamw', lr=1e-4, schedule='constant', b1=0.9, b2=0.999,
             eps=1e-8, weight_decay=0.0)
  state, shardings, mesh = init_state(cfg, seed, opt)
  step = make_train_step(sft_loss_fn(Transformer(cfg)), shardings, mesh)
  data = jax.device_put(random_batch(cfg, batch, seq_len, seed),
                        batch_sharding(mesh))
  key = jax.random.PRNGKey(seed + 1)
  losses = []
  t = time.perf_counter()
  for _ in range(warmup):
    state, metrics = step(state, data, key)
    losses.append(float(metrics['loss']))
  warmup_s = time.perf_counter() - t
  t = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, data, key)
  losses.append(float(metrics['loss']))  # Waits for the last step.
  seconds = time.perf_counter() - t
  tokens_per_s = batch * seq_len * steps / seconds
  peak = peak_matmul_flops(matmul_n, cfg.jnp_dtype)
  achieved = flops_per_token(cfg, seq_len)['total'] * tokens_per_s
  return {'device': jax.devices()[0].device_kind, 'dtype': cfg.dtype,
          'param_dtype': cfg.param_dtype, 'batch': batch, 'seq_len': seq_len,
          'num_params': cfg.num_params(), 'steps': steps,
          'warmup_s': round(warmup_s, 2), 'step_s': seconds / steps,
          'tokens_per_s': tokens_per_s, 'model_flops_per_s': achieved,
          'peak_matmul_flops_per_s': peak, 'mfu': achieved / peak,
          'losses': losses}
