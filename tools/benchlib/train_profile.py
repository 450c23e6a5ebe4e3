"""bench_train's profiling and matmul-rate helpers.

HLO text and profiler-trace parsing (op categories, step phases), the
per-side profiles of one training step, and the peak float32 matmul rate.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import statistics
import tempfile
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _time_loop(fn: Callable[[], Any], n: int) -> list[float]:
  times = []
  for _ in range(n):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return times



# Peak matmul rate -------------------------------------------------------------


def matmul_rates(n: int, iters: int) -> dict[str, Any]:
  """Peak float32 n^3 matmul FLOP/s of jnp and torch (fastest call).

  Also times jnp under each `jax_default_matmul_precision` and measures the
  error against float64, to show whether the setting matters on this CPU.
  Settings are timed in interleaved rounds so that background load hits
  them alike.
  """
  import torch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  a_np = rng.standard_normal((n, n), dtype=np.float32)
  b_np = rng.standard_normal((n, n), dtype=np.float32)
  ref = a_np.astype(np.float64) @ b_np.astype(np.float64)
  err = lambda c: float(np.abs(np.asarray(c) - ref).max() / np.abs(ref).max())
  a, b = jnp.asarray(a_np), jnp.asarray(b_np)
  ta, tb = torch.from_numpy(a_np), torch.from_numpy(b_np)
  f = jax.jit(lambda x, y: x @ y)

  def jax_mm(precision):
    def run():
      # The precision is part of jit's cache key: one executable per setting.
      with jax.default_matmul_precision(precision):
        return f(a, b).block_until_ready()
    return run

  calls = {'jax': jax_mm(None), 'jax_highest': jax_mm('highest'),
           'jax_bfloat16': jax_mm('bfloat16'),
           'torch': lambda: torch.mm(ta, tb)}
  errors = {k: err(fn()) for k, fn in calls.items()}  # Also compiles.
  best = {k: float('inf') for k in calls}
  with torch.no_grad():
    for _ in range(3):
      for k, fn in calls.items():
        best[k] = min(best[k], min(_time_loop(fn, iters)))
  rate = {k: 2.0 * n**3 / t for k, t in best.items()}
  return {
      'n': n, 'jax_flops_per_s': rate['jax'],
      'torch_flops_per_s': rate['torch'],
      'peak_flops_per_s': max(rate['jax'], rate['torch']),
      'jax_max_rel_err': errors['jax'], 'torch_max_rel_err': errors['torch'],
      'jax_precision_check': {
          p: {'flops_per_s': rate[k], 'max_rel_err': errors[k]}
          for p, k in (('default', 'jax'), ('highest', 'jax_highest'),
                       ('bfloat16', 'jax_bfloat16'))},
  }



# The step's dense GEMMs alone -------------------------------------------------

# How each product's operands are stored: 'NN' a[m, k] @ b[k, n]; 'NT'
# a[m, k] . b[n, k] (b transposed); 'TN' a[k, m] . b[k, n] (a transposed).
_DIMS = {'NN': ((1,), (0,)), 'NT': ((1,), (1,)), 'TN': ((0,), (0,))}


def dense_gemms(cfg, tokens: int) -> dict[tuple[str, int, int, int], int]:
  """The train step's weight products: {(layout, m, k, n): calls per step}.

  Each dense layer x[T, i] @ W[i, o] is three products per step: forward
  (NN, T x i x o), input gradient dy @ W^T (NT, T x o x i) and weight
  gradient x^T @ dy (TN, i x T x o). A tied unembedding x @ E^T with E
  [V, D] is NT forward, NN for dx, TN for dE. Attention's score and value
  products are not here (torch runs them inside its fused SDPA kernel).
  """
  d, f, hd = cfg.embed_dim, cfg.mlp_dim, cfg.head_size
  layer = [(d, cfg.num_heads * hd), (d, cfg.num_kv_heads * hd),
           (d, cfg.num_kv_heads * hd), (cfg.num_heads * hd, d),
           (d, f), (d, f), (f, d)]  # q, k, v, o, gate, up, down.
  out: dict[tuple[str, int, int, int], int] = collections.Counter()
  for i, o in layer:
    for key in (('NN', tokens, i, o), ('NT', tokens, o, i),
                ('TN', i, tokens, o)):
      out[key] += cfg.num_layers
  v = cfg.vocab_size
  if cfg.tie_embeddings:
    keys = [('NT', tokens, d, v), ('NN', tokens, v, d), ('TN', v, tokens, d)]
  else:
    keys = [('NN', tokens, d, v), ('NT', tokens, v, d), ('TN', d, tokens, v)]
  for key in keys:
    out[key] += 1
  return dict(out)


def gemm_operands(layout: str, m: int, k: int, n: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Random float32 operands of an m x k x n product stored as `layout`."""
  a_shape = (k, m) if layout == 'TN' else (m, k)
  b_shape = (n, k) if layout == 'NT' else (k, n)
  return (rng.standard_normal(a_shape, dtype=np.float32),
          rng.standard_normal(b_shape, dtype=np.float32))


def jax_gemm(layout: str) -> Callable[[Any, Any], Any]:
  """The jitted [m, n] product of operands stored as `layout`."""
  dims = (_DIMS[layout], ((), ()))
  return jax.jit(lambda a, b: jax.lax.dot_general(a, b, dims))


def torch_gemm(layout: str) -> Callable[[Any, Any], Any]:
  """torch's [m, n] product of operands stored as `layout` (views, no copy)."""
  return {'NN': lambda a, b: a @ b, 'NT': lambda a, b: a @ b.t(),
          'TN': lambda a, b: a.t() @ b}[layout]


def dense_gemm_times(cfg, tokens: int, iters: int) -> dict[str, Any]:
  """Seconds per step each library spends in `dense_gemms` alone.

  Every distinct product is timed in float32 by jnp (a jitted dot_general in
  the stored layout) and by torch (`a @ b` on transposed views), alternating
  sides, best of `iters` calls each; the step's total is the sum over
  products times their calls. What a step takes beyond this is the rest of
  the program: attention, norms, activations, the loss, the optimizer.
  """
  import torch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  rows, jax_s, torch_s = [], 0.0, 0.0
  for (layout, m, k, n), calls in sorted(dense_gemms(cfg, tokens).items()):
    a_np, b_np = gemm_operands(layout, m, k, n, rng)
    f, a, b = jax_gemm(layout), jnp.asarray(a_np), jnp.asarray(b_np)
    tf = torch_gemm(layout)
    ta, tb = torch.from_numpy(a_np), torch.from_numpy(b_np)
    calls_of = {'jax': lambda: f(a, b).block_until_ready(),
                'torch': lambda: tf(ta, tb)}
    best = {side: float('inf') for side in calls_of}
    with torch.no_grad():
      for fn in calls_of.values():
        fn()  # Compile / warm up.
      for _ in range(iters):
        for side, fn in calls_of.items():
          best[side] = min(best[side], _time_loop(fn, 1)[0])
    rows.append({'layout': layout, 'm': m, 'k': k, 'n': n, 'calls': calls,
                 'jax_s': best['jax'], 'torch_s': best['torch']})
    jax_s += calls * best['jax']
    torch_s += calls * best['torch']
  flops = sum(2 * r['m'] * r['k'] * r['n'] * r['calls'] for r in rows)
  return {'flops': flops, 'jax_s': jax_s, 'torch_s': torch_s,
          'ratio_jax_over_torch': torch_s / jax_s, 'iters': iters,
          'products': rows}


def _print_matmul(mm: dict[str, Any]) -> None:
  print(f'# fp32 matmul {mm["n"]}^3: jax {mm["jax_flops_per_s"] / 1e9:.1f} '
        f'GFLOP/s, torch {mm["torch_flops_per_s"] / 1e9:.1f} GFLOP/s; '
        'jnp by jax_default_matmul_precision: ' + ', '.join(
            f'{k} {v["flops_per_s"] / 1e9:.1f} GFLOP/s, rel. err '
            f'{v["max_rel_err"]:.1e}'
            for k, v in mm['jax_precision_check'].items()), flush=True)


# Profiling -------------------------------------------------------------------


def _hlo_ops(hlo: str) -> dict[str, dict[str, str]]:
  """Instruction name -> {opcode, shape, contains, op_name} from HLO text."""
  comps: dict[str, list[tuple[str, str, str, str]]] = {}
  current = None
  line_re = re.compile(
      r'^\s*(?:ROOT )?%?(\S+) = (.*?) ([a-z][\w\-]*)\((.*)$')
  for line in hlo.splitlines():
    head = re.match(r'^(?:ENTRY )?%?(\S+) \(.*\{$', line)
    if head:
      current = comps.setdefault(head.group(1), [])
      continue
    m = line_re.match(line)
    if m and current is not None:
      current.append(m.groups())
  ops = {}
  for instrs in comps.values():
    for name, shape, opcode, rest in instrs:
      called = re.search(r'calls=%?([\w.\-]+)', rest)
      inner = {o for _, _, o, _ in comps.get(called.group(1), [])} if called \
          else set()
      op_name = re.search(r'op_name="([^"]*)"', rest)
      ops[name] = {'opcode': opcode, 'shape': re.sub(r'\{[^}]*\}', '', shape),
                   'contains': ','.join(sorted(
                       inner & {'dot', 'convolution', 'scatter', 'gather',
                                'reduce', 'transpose', 'copy', 'exponential',
                                'custom-call'})),
                   'op_name': op_name.group(1) if op_name else ''}
  return ops


def _category(info: dict[str, str]) -> str:
  kinds = set(info['contains'].split(',')) | {info['opcode']}
  for cat in ('dot', 'convolution', 'custom-call', 'scatter', 'gather',
              'reduce', 'transpose', 'copy'):
    if cat in kinds:
      return 'matmul' if cat in ('dot', 'convolution') else cat
  return 'elementwise'


def _phase(op_name: str) -> str:
  """Which part of the step an op comes from, by its JAX name stack."""
  if 'transpose(jvp' in op_name:
    return 'backward'
  if 'jvp(' in op_name:
    return 'forward'
  return 'optimizer, norms, layout'


def _trace_op_times(trace_dir: str, module_prefix: str) -> dict[str, float]:
  """Seconds per HLO instruction of the module, summed over a trace."""
  files = sorted(glob.glob(os.path.join(trace_dir, '**', '*.xplane.pb'),
                           recursive=True))
  times: dict[str, float] = collections.defaultdict(float)
  pd = jax.profiler.ProfileData.from_file(files[-1])
  for plane in pd.planes:
    for line in plane.lines:
      for ev in line.events:
        stats = dict(ev.stats)
        if (str(stats.get('hlo_module', '')).startswith(module_prefix)
            and 'hlo_op' in stats):
          times[str(stats['hlo_op'])] += ev.duration_ns * 1e-9
  return times


def _sum_by(op_times, ops, key) -> dict[str, float]:
  out: dict[str, float] = collections.defaultdict(float)
  for name, t in op_times.items():
    info = ops.get(name, {'opcode': name, 'contains': '', 'op_name': ''})
    out[key(info)] += t
  return dict(sorted(out.items(), key=lambda kv: -kv[1]))



def profile_jax(side, steps: int, top_ops: int) -> dict[str, Any]:
  """Forward / backward / optimizer split, XLA flops, top ops of one step."""
  n = max(2, steps)
  state, batch = side.state, side.batch
  plain = lambda p, b: side.loss_fn(p, b, None, None)
  fwd = jax.jit(lambda p, b: plain(p, b)[0])
  fwd_bwd = jax.jit(jax.value_and_grad(plain, has_aux=True))

  def opt_update(params, opt_state, grads):
    updates, opt_state = state.tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt = jax.jit(opt_update)  # Not donated: it runs on the live state.
  block = jax.block_until_ready
  med = lambda f: statistics.median(_time_loop(lambda: block(f()), n))
  block(fwd(state.params, batch))
  t_fwd = med(lambda: fwd(state.params, batch))
  _, grads = block(fwd_bwd(state.params, batch))
  t_fwd_bwd = med(lambda: fwd_bwd(state.params, batch))
  block(opt(state.params, state.opt_state, grads))
  t_opt = med(lambda: opt(state.params, state.opt_state, grads))
  del grads

  # The jit cache already holds this executable: no second compilation.
  t0 = time.perf_counter()
  compiled = side.train_step.lower(state, batch, side.rng).compile()
  lower_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  ops = _hlo_ops(compiled.as_text())
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      t0 = time.perf_counter()
      side.step()
      traced_s = time.perf_counter() - t0
    op_times = _trace_op_times(trace_dir, 'jit_step')
  total = sum(op_times.values()) or 1.0
  top = sorted(op_times.items(), key=lambda kv: -kv[1])[:top_ops]
  return {
      'forward_s': t_fwd, 'forward_backward_s': t_fwd_bwd,
      'optimizer_s': t_opt, 'xla_flops_per_step': float(cost.get('flops', 0)),
      'lower_compile_again_s': lower_s, 'traced_step_s': traced_s,
      'op_time_sum_s': total,
      'op_time_by_category': _sum_by(op_times, ops, _category),
      'op_time_by_phase': _sum_by(op_times, ops,
                                  lambda o: _phase(o['op_name'])),
      'op_time_by_category_and_phase': _sum_by(
          op_times, ops, lambda o: f'{_category(o)}/{_phase(o["op_name"])}'),
      'top_ops': [{'name': k, 'time_s': v, 'pct': 100 * v / total,
                   **ops.get(k, {})} for k, v in top],
  }


def profile_torch(side, steps: int, top_ops: int) -> dict[str, Any]:
  """Forward / forward+backward / optimizer timings, top ops of one step."""
  import torch  # pylint: disable=g-import-not-at-top
  n = max(2, steps)
  model, opt, tokens = side.model, side.opt, side.tokens
  med = lambda f: statistics.median(_time_loop(f, n))

  def fwd():
    with torch.no_grad():
      model(input_ids=tokens, labels=tokens)

  def fwd_bwd():
    model(input_ids=tokens, labels=tokens).loss.backward()
    opt.zero_grad(set_to_none=True)

  t_fwd, t_fwd_bwd = med(fwd), med(fwd_bwd)
  model(input_ids=tokens, labels=tokens).loss.backward()
  t_opt = med(opt.step)
  opt.zero_grad(set_to_none=True)
  with torch.profiler.profile(
      activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    side.step()
  events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
  total = sum(e.self_cpu_time_total for e in events) or 1.0
  return {
      'forward_s': t_fwd, 'forward_backward_s': t_fwd_bwd,
      'optimizer_s': t_opt,
      'top_ops': [{'name': e.key, 'time_s': e.self_cpu_time_total * 1e-6,
                   'pct': 100 * e.self_cpu_time_total / total,
                   'calls': e.count} for e in events[:top_ops]],
  }


def print_profiles(results) -> None:
  for r in results:
    for side in [k for k in r if k == 'jax' or k.startswith('torch_')]:
      p, x = r[side].get('profile'), r[side]
      if not p:
        continue
      print(f'\n## {r["shape"]} {side}: step {x["step_time_median_s"]:.3f}s, '
            f'forward {p["forward_s"]:.3f}s, forward+backward '
            f'{p["forward_backward_s"]:.3f}s, optimizer '
            f'{p["optimizer_s"]:.3f}s')
      if side == 'jax':
        fpt = r['flops_per_token']['total'] * r['batch'] * r['seq_len']
        print(f'compilations {x["compilations"]}, donated {x["donated"]}, '
              f'XLA flops/step {p["xla_flops_per_step"]:.3g} vs formula '
              f'{fpt:.3g}; op time by category: ' + ', '.join(
                  f'{k} {100 * v / p["op_time_sum_s"]:.0f}%'
                  for k, v in p['op_time_by_category'].items())
              + '; by phase: ' + ', '.join(
                  f'{k} {100 * v / p["op_time_sum_s"]:.0f}%'
                  for k, v in p['op_time_by_phase'].items()))
      for op in p['top_ops']:
        desc = (f'{op.get("opcode", "")} {op.get("shape", "")} '
                f'[{op.get("contains", "")}] {op.get("op_name", "")[-70:]}'
                if side == 'jax' else f'x{op["calls"]}')
        print(f'  {op["pct"]:5.1f}% {op["time_s"]:.4f}s {op["name"]} {desc}')

