"""bench_decode's bandwidth bound, ratios, goals and the Markdown report."""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreason.models.transformer import TransformerConfig


def param_bytes(config: TransformerConfig, dtype: str) -> int:
  return config.num_params() * jnp.dtype(dtype).itemsize


def kv_bytes_per_position(config: TransformerConfig, dtype: str) -> int:
  """K and V of every layer for one cached token."""
  return (2 * config.num_layers * config.num_kv_heads * config.head_size
          * jnp.dtype(dtype).itemsize)


# Bandwidth --------------------------------------------------------------------


def _best_time(fn, reps: int = 5) -> float:
  fn()
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return min(times)


def measure_bandwidth(mib: int) -> dict[str, Any]:
  """Bytes/s read by sums over `mib` MiB of float32 and by a matvec."""
  n = mib * 2**20 // 4
  x = jnp.ones((n,), jnp.float32)
  jsum = jax.jit(jnp.sum)
  jsum2 = jax.jit(lambda a: jnp.sum(a.reshape(os.cpu_count() or 1, -1), 1))
  a = np.ones((n,), np.float32)
  cols = 4096
  w = jnp.ones((n // cols, cols), jnp.float32)
  v = jnp.ones((cols,), jnp.float32)
  matvec = jax.jit(lambda w, v: w @ v)
  rates = {
      'jax_sum': n * 4 / _best_time(lambda: jsum(x).block_until_ready()),
      'jax_sum_rows': n * 4 / _best_time(
          lambda: jsum2(x).block_until_ready()),
      'numpy_sum': n * 4 / _best_time(a.sum),
      'jax_matvec': n * 4 / _best_time(
          lambda: matvec(w, v).block_until_ready()),
  }
  # The bound uses the fastest read measured, the matrix-vector product
  # included (it can beat a plain sum), so no share can exceed 100%.
  fastest = max(rates, key=rates.get)
  return {'bytes': n * 4, 'rates_bytes_per_s': rates,
          'read_bytes_per_s': rates[fastest], 'fastest_read': fastest}


def matvec_shapes(config: TransformerConfig) -> list[tuple[int, int, bool]]:
  """(rows, cols, transposed) of every weight a batch-1 decode step reads.

  Shapes as the model stores them: [in, out] kernels (x @ w), and the tied
  embedding [vocab, embed] that the output projection reads as x @ w.T.
  """
  d, f, h = config.embed_dim, config.mlp_dim, config.head_size
  layer = [(d, config.num_heads * h), (d, config.num_kv_heads * h),
           (d, config.num_kv_heads * h), (config.num_heads * h, d), (d, f),
           (d, f), (f, d)]
  head = ((config.vocab_size, d, True) if config.tie_embeddings
          else (d, config.vocab_size, False))
  return [(a, b, False) for a, b in layer] * config.num_layers + [head]


def measure_matvec_chain(config: TransformerConfig, dtype: str,
                         reps: int = 3) -> dict[str, Any]:
  """Bytes/s XLA reads weights at through the model's own matvecs.

  One jitted function multiplies a vector by every weight matrix of the
  model's shape (random values, in the model's layouts), each product
  feeding the next as in a decode step. No attention, norms or sampling:
  this is the rate XLA:CPU's matrix-vector products stream weights at, the
  practical ceiling for a batch-1 decode step built from XLA dots.
  """
  shapes = matvec_shapes(config)
  keys = jax.random.split(jax.random.key(0), len(shapes))
  ws = [jax.random.normal(k, (a, b), dtype) * 0.02
        for k, (a, b, _) in zip(keys, shapes)]
  flags_t = [t for _, _, t in shapes]

  @jax.jit
  def chain(y, ws):
    for w, t in zip(ws, flags_t):  # Each input is the previous output.
      n_in = w.shape[1] if t else w.shape[0]
      y = jnp.resize(y, (1, n_in)).astype(w.dtype)
      y = y @ w.T if t else y @ w
    return y

  x = jnp.ones((1, config.embed_dim), dtype)
  seconds = _best_time(lambda: chain(x, ws).block_until_ready(), reps)
  nbytes = sum(a * b for a, b, _ in shapes) * jnp.dtype(dtype).itemsize
  return {'dtype': dtype, 'weight_bytes': nbytes, 'seconds': seconds,
          'bytes_per_s': nbytes / seconds}


def bandwidth_bound(config: TransformerConfig, bw: float, dtype: str,
                    prompt_len: int, new_tokens: int) -> dict[str, Any]:
  """Batch-1 tokens/s if every step only read weights and the valid cache."""
  ctx = prompt_len + (new_tokens + 1) / 2
  weights = param_bytes(config, dtype)
  kv = kv_bytes_per_position(config, dtype) * ctx
  return {'weight_bytes': weights, 'kv_bytes_per_token': kv,
          'mean_context': ctx, 'bytes_per_token': weights + kv,
          'bound_tok_s': bw / (weights + kv)}


# Report -----------------------------------------------------------------------


def _get(results, case, fw, key='tok_s'):
  r = results.get('cases', {}).get(case, {}).get('results', {}).get(fw)
  if not r or 'error' in r:
    return None
  return r.get(key)


def _ratio(a, b):
  return None if a is None or b is None or not b else a / b


def compute_ratios(results: dict[str, Any]) -> dict[str, Any]:
  """Ratios and bandwidth shares from whatever cases are present."""
  out: dict[str, Any] = {}
  for case, entry in results.get('cases', {}).items():
    kind = entry['plan']['kind']
    r: dict[str, Any] = {}
    if kind == 'generate':
      for peer in ('tunix', 'transformers'):
        for key in ('tok_s', 'decode_tok_s'):
          r[f'jaxreason_over_{peer}_{key}'] = _ratio(
              _get(results, case, 'jaxreason', key),
              _get(results, case, peer, key))
    elif kind == 'shared':
      shared = _get(results, case, 'jaxreason', 'total_s')
      for fw in ('jaxreason_repeated', 'transformers', 'tunix'):
        r[f'{fw}_seconds_over_shared'] = _ratio(_get(results, case, fw,
                                                     'total_s'), shared)
    elif kind == 'long':
      for window in ('early', 'late'):
        a = (_get(results, case, 'jaxreason', window) or {}).get('tok_s')
        b = (_get(results, case, 'tunix', window) or {}).get('tok_s')
        r[f'{window}_jaxreason_over_tunix'] = _ratio(a, b)
      early = (_get(results, case, 'jaxreason', 'early') or {}).get('tok_s')
      late = (_get(results, case, 'jaxreason', 'late') or {}).get('tok_s')
      r['jaxreason_late_over_early'] = _ratio(late, early)
    out[case] = r
  bw = results.get('bandwidth')
  if bw:
    for case in ('batch1', 'bf16_batch1'):
      if case not in results.get('cases', {}):
        continue
      plan = results['cases'][case]['plan']
      config = TransformerConfig(**results['settings']['model'])
      bound = bandwidth_bound(config, bw['read_bytes_per_s'], plan['dtype'],
                              plan['prompt_len'], plan['new_tokens'])
      for fw in ('jaxreason', 'tunix', 'transformers'):
        bound[f'{fw}_share'] = _ratio(_get(results, case, fw, 'decode_tok_s'),
                                      bound['bound_tok_s'])
      chain = results.get('matvec_chain', {}).get(plan['dtype'])
      if chain:  # The same bound at XLA's own matvec rate.
        bound['matvec_chain_bytes_per_s'] = chain['bytes_per_s']
        bound['matvec_bound_tok_s'] = (chain['bytes_per_s']
                                       / bound['bytes_per_token'])
        bound['jaxreason_share_of_matvec_bound'] = _ratio(
            _get(results, case, 'jaxreason', 'decode_tok_s'),
            bound['matvec_bound_tok_s'])
      out[case]['bandwidth_bound'] = bound
  bf = _get(results, 'bf16_batch1', 'jaxreason')
  if bf is not None:
    out['bf16_batch1']['jaxreason_bf16_over_tunix_f32'] = _ratio(
        bf, _get(results, 'batch1', 'tunix'))
    out['bf16_batch1']['jaxreason_bf16_over_jaxreason_f32'] = _ratio(
        bf, _get(results, 'batch1', 'jaxreason'))
  return out


def check_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
  ratios = results.get('ratios', {})
  r = lambda case, key: ratios.get(case, {}).get(key)
  bound = ratios.get('batch1', {}).get('bandwidth_bound', {})
  goals = [
      ('batch1 tok/s >= tunix', r('batch1', 'jaxreason_over_tunix_tok_s'), 1.0),
      ('batch1 decode >= 90% of bandwidth bound', bound.get('jaxreason_share'),
       0.9),
      ('bf16 batch1 >= 1.6x tunix f32',
       r('bf16_batch1', 'jaxreason_bf16_over_tunix_f32'), 1.6),
      ('batch8 >= 1.5x tunix', r('batch8', 'jaxreason_over_tunix_tok_s'), 1.5),
      ('batch32 >= 1.5x tunix', r('batch32', 'jaxreason_over_tunix_tok_s'),
       1.5),
      ('shared prefix >= 3x faster than repeating',
       r('shared_prefix', 'jaxreason_repeated_seconds_over_shared'), 3.0),
      ('long: early tokens >= 2x tunix',
       r('long', 'early_jaxreason_over_tunix'), 2.0),
  ]
  return [{'goal': g, 'value': v, 'target': t,
           'status': 'n/a' if v is None else ('PASS' if v >= t else 'MISS')}
          for g, v, t in goals]


def _fmt(x, spec='.2f'):
  return '-' if x is None else format(x, spec)


def format_report(results: dict[str, Any]) -> str:
  lines = []
  m, s = results['machine'], results['settings']
  lines.append(f'# bench_decode: {m["cpu"]}, {m["cpu_count"]} CPUs, '
               f'jax {m["jax"]}, model {s["model_name"]} '
               f'({s["num_params"] / 1e6:.1f}M params)')
  cases = results.get('cases', {})
  ratios = results.get('ratios', {})
  gen = [c for c, e in cases.items() if e['plan']['kind'] == 'generate']
  if gen:
    lines += ['', '| case | framework | tokens | prefill s | decode s | tok/s '
              '| decode tok/s | x tunix | x transformers |',
              '|---|---|---|---|---|---|---|---|---|']
    for case in gen:
      for fw, r in cases[case]['results'].items():
        if 'error' in r:
          lines.append(f'| {case} | {fw} | error: {r["error"]} |||||||')
          continue
        xt = xh = ''
        if fw == 'jaxreason':
          xt = _fmt(ratios.get(case, {}).get('jaxreason_over_tunix_tok_s'))
          xh = _fmt(ratios.get(case, {}).get(
              'jaxreason_over_transformers_tok_s'))
        lines.append(
            f'| {case} | {fw} | {r["generated_tokens"]}/'
            f'{r["expected_tokens"]} | {r["prefill_s"]:.2f} | '
            f'{r["decode_s"]:.2f} | {r["tok_s"]:.2f} | '
            f'{_fmt(r["decode_tok_s"])} | {xt} | {xh} |')
  if 'shared_prefix' in cases:
    lines += ['', '| shared_prefix | tokens | prefill s | decode s | total s '
              '| tok/s | total s / shared |', '|---|---|---|---|---|---|---|']
    for fw, r in cases['shared_prefix']['results'].items():
      if 'error' in r:
        lines.append(f'| {fw} | error: {r["error"]} ||||||')
        continue
      x = ('1.00' if fw == 'jaxreason' else _fmt(
          ratios.get('shared_prefix', {}).get(f'{fw}_seconds_over_shared')))
      lines.append(f'| {fw} | {r["generated_tokens"]}/{r["expected_tokens"]} '
                   f'| {r["prefill_s"]:.2f} | {r["decode_s"]:.2f} | '
                   f'{r["total_s"]:.2f} | {r["tok_s"]:.2f} | {x} |')
  if 'long' in cases:
    lines += ['', '| long | window | start pos | tokens | s | tok/s |',
              '|---|---|---|---|---|---|']
    for fw, r in cases['long']['results'].items():
      if 'error' in r:
        lines.append(f'| {fw} | error: {r["error"]} |||||')
        continue
      for window in ('early', 'middle', 'late'):
        if window in r:
          w = r[window]
          lines.append(f'| {fw} | {window} | {w["start_position"]} | '
                       f'{w["generated_tokens"]}/{w["expected_tokens"]} | '
                       f'{w["seconds"]:.2f} | {w["tok_s"]:.2f} |')
    lr = ratios.get('long', {})
    lines.append(f'\nlong: early x tunix '
                 f'{_fmt(lr.get("early_jaxreason_over_tunix"))}, late x tunix '
                 f'{_fmt(lr.get("late_jaxreason_over_tunix"))}'
                 f', jaxreason late/early '
                 f'{_fmt(lr.get("jaxreason_late_over_early"))}')
  bw = results.get('bandwidth')
  if bw:
    rates = ', '.join(f'{k} {v / 1e9:.1f}' for k, v in
                      bw['rates_bytes_per_s'].items())
    lines.append(f'\nread bandwidth {bw["read_bytes_per_s"] / 1e9:.1f} GB/s '
                 f'({rates} GB/s)')
    for case in ('batch1', 'bf16_batch1'):
      b = ratios.get(case, {}).get('bandwidth_bound')
      if b:
        lines.append(
            f'{case}: {b["bytes_per_token"] / 1e6:.1f} MB/token -> bound '
            f'{b["bound_tok_s"]:.2f} tok/s; decode share: jaxreason '
            f'{_fmt(b["jaxreason_share"], ".0%")}, tunix '
            f'{_fmt(b["tunix_share"], ".0%")}, transformers '
            f'{_fmt(b["transformers_share"], ".0%")}')
        if 'matvec_bound_tok_s' in b:
          lines.append(
              f'{case}: XLA matvec chain at the model\'s shapes reads '
              f'{b["matvec_chain_bytes_per_s"] / 1e9:.1f} GB/s -> bound '
              f'{b["matvec_bound_tok_s"]:.2f} tok/s; jaxreason decode '
              f'{_fmt(b["jaxreason_share_of_matvec_bound"], ".0%")} of it')
  b1 = ratios.get('bf16_batch1', {})
  if 'jaxreason_bf16_over_tunix_f32' in b1:
    lines.append(f'bf16 batch1: x tunix f32 '
                 f'{_fmt(b1["jaxreason_bf16_over_tunix_f32"])}, x jaxreason '
                 f'f32 {_fmt(b1["jaxreason_bf16_over_jaxreason_f32"])}')
  lines += ['', '| goal | value | target | status |', '|---|---|---|---|']
  for g in results.get('goals', []):
    lines.append(f'| {g["goal"]} | {_fmt(g["value"])} | {g["target"]} | '
                 f'{g["status"]} |')
  return '\n'.join(lines)
