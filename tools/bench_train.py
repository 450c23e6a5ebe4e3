r"""SFT training throughput: jaxreason vs transformers + torch AdamW on the CPU.

  JAX_PLATFORMS=cpu python tools/bench_train.py --shapes=bench-40m,bench-124m \
      --batch=8 --seq_len=512 --steps=5 --warmup=2 --output=bench_train.json
  # Quick check (a minute or two on 2 cores):
  JAX_PLATFORMS=cpu python tools/bench_train.py --shapes=bench-40m --batch=2 \
      --seq_len=128 --steps=3 --warmup=1 --torch_attn=sdpa,eager --profile

Both sides train the same model: jaxreason initialises the parameters, writes
them with `hf.save_checkpoint`, and `transformers.AutoModelForCausalLM` loads
that checkpoint. Both take full float32 AdamW steps (lr 1e-4, same betas, eps
and weight decay on matrices only) on the same random token batch, with loss =
mean next-token cross-entropy over all B*(T-1) positions; the losses of the two
runs are recorded step by step as a check that they train the same thing.

* JAX: the library's real step (`create_train_state` + `make_train_step` with
  `sft_loss`, all tokens one segment, loss_mask ones) on a 1-device mesh. The
  step also reports grad_norm, param_norm and accuracy, as in training.
* torch: `torch.set_num_threads(os.cpu_count())`, `model.train()`, loss from
  `labels`, backward, `AdamW.step()`, `zero_grad()`. attn_implementation is
  'sdpa' (the default) and optionally 'eager' (`--torch_attn=sdpa,eager`).

Warmup steps (JAX compilation) are not timed. tokens/s = B*T*steps / time.

FLOPs and MFU. Per trained token (fwd + bwd = 3x fwd):
  flops/token = 6 * N_matmul + 12 * L * T * H * D_head
with N_matmul = L * (d*H*Dh*2 + d*K*Dh*2 + 3*d*F) + V*d: the weights of all
matmuls, counting the output projection (lm_head or the tied embedding) once
and not the embedding lookup, biases or norms. The second term is attention
(QK^T and PV, 2*2*T*H*Dh per token forward) counted without causal savings,
as in PaLM (Chowdhery et al. 2022, app. B). MFU = flops/token * tokens/s /
peak, where peak is the best float32 matmul rate measured here (n x n @ n x n,
2n^3 flops, jitted jnp and torch.mm, before and after the runs; the fastest).
The same peak divides both sides.

Each side runs in its own process (`--isolate`, the default: one child per
shape and side, one after the other, the torch side loading the checkpoint
the parent wrote and the JAX side re-initialising from the same seed). In one
process the two runtimes' thread pools interfere: on the 2-core Xeon host a
JAX step took 8.3 s before any torch step and 10-12 s after one. With
`--isolate=false` all sides share this process and their timed steps are
interleaved (jax, torch, jax, torch ...), so that changes in background load
fall on both.

`--rounds=N` runs each isolated side N times, alternating the order (jax,
torch, torch, jax, ...), and reports each side's fastest round (every
round's tok/s is kept in the JSON): on a shared host a slow spell then
biases neither side. The JAX side's `--attention_block_size` (default 128)
is `TransformerConfig.attention_block_size`: causal query blocks that skip
the masked upper triangle (exact); 0 gives one dense attention call.

`--gemm_iters=N` (default 3; 0 skips it) times, in this process before the
sides run, the step's dense weight products alone: every layer's forward,
input-gradient and weight-gradient GEMM in the layout the model stores them,
by jnp and by torch (`train_profile.dense_gemm_times`). Their sum per step
bounds what any program on each library can reach, and the step time minus
it is what the program around the GEMMs costs (attention, norms,
activations, loss, optimizer): the table's last two columns.

`--profile` adds, per framework: forward-only, forward+backward and
optimizer-only timings (medians); for JAX also the number of compilations of
the step, whether donation freed the old state, XLA's flop count of the step,
and one step's HLO ops from a profiler trace, summed by category (matmul,
transpose, reduce, ...) and phase (forward / backward / other, from the name
stack); for torch the top ops of torch.profiler. Op times are summed over
threads, so they can exceed the step's wall time.

Run it on an idle machine; the load average is recorded at start and end.
Other processes slow the two sides differently: torch runs many small
OpenMP-parallel ops, each ending in a barrier that waits for a descheduled
thread, while XLA runs fewer fused ops on a work-stealing pool.

XLA CPU flags are process-wide: set them in the environment, e.g.
`XLA_FLAGS=--xla_cpu_use_onednn=true`; they are recorded in the JSON. Faking
devices (`--xla_force_host_platform_device_count`) is refused: the CPU is one
device.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from absl import app
from absl import flags
import jax
import numpy as np
import optax

from jaxreason.models import hf
from jaxreason.models.transformer import Transformer, TransformerConfig
from jaxreason.train.step import batch_sharding, make_train_step

# `python tools/bench_train.py` and tests loading this file by path alike.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import train_mfu  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchlib.train_mfu import flops_per_token  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchlib import train_profile  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchlib.train_profile import _time_loop, matmul_rates  # pylint: disable=g-import-not-at-top,wrong-import-position

_SHAPES = flags.DEFINE_list(
    'shapes', ['bench-40m', 'bench-124m'],
    'Model shapes: TransformerConfig presets (bench-40m, bench-124m, '
    'bench-tiny, or any model preset).')
_BATCH = flags.DEFINE_integer('batch', 8, 'Sequences per step.')
_SEQ_LEN = flags.DEFINE_integer('seq_len', 512, 'Tokens per sequence.')
_STEPS = flags.DEFINE_integer('steps', 5, 'Timed steps.')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed steps first (>= 1).')
_LR = flags.DEFINE_float('lr', 1e-4, 'AdamW learning rate (constant).')
_WEIGHT_DECAY = flags.DEFINE_float(
    'weight_decay', 0.0, 'AdamW weight decay, on matrices only, both sides.')
_FRAMEWORKS = flags.DEFINE_list('frameworks', ['jax', 'torch'],
                                'Which sides to run.')
_TORCH_ATTN = flags.DEFINE_list(
    'torch_attn', ['sdpa'], "transformers attn_implementation(s): sdpa, eager.")
_MATMUL_N = flags.DEFINE_integer('matmul_n', 2048, 'Peak-rate matmul size.')
_MATMUL_ITERS = flags.DEFINE_integer('matmul_iters', 10,
                                     'Matmuls per timing (best of 3).')
_GEMM_ITERS = flags.DEFINE_integer(
    'gemm_iters', 3, 'Timed calls of each of the step\'s dense GEMMs, per '
    'side, for the GEMMs-alone column (train_profile.dense_gemm_times); 0: '
    'skip it.')
_ATTN_BLOCK = flags.DEFINE_integer(
    'attention_block_size', 128,
    'JAX side: TransformerConfig.attention_block_size (causal query blocks; '
    '0: one dense block). The checkpoint and torch side are unaffected.')
_PROFILE = flags.DEFINE_bool('profile', False,
                             'Break steps down (fwd/bwd/optimizer, top ops).')
_TOP_OPS = flags.DEFINE_integer('top_ops', 12, 'Ops listed by --profile.')
_SEED = flags.DEFINE_integer('seed', 0, 'Init and data seed.')
_OUTPUT = flags.DEFINE_string('output', 'bench_train.json', 'JSON results.')
_ISOLATE = flags.DEFINE_bool(
    'isolate', True, 'Each side in its own process (one per shape and '
    'side); False: every side in this process, timed steps interleaved.')
_ROUNDS = flags.DEFINE_integer(
    'rounds', 1, 'With --isolate: run every side this many times, in '
    'alternating order (jax, torch, torch, jax, ...), and report each '
    "side's fastest round (all rounds' tok/s are recorded): background load "
    'on a shared host then biases neither side.')
_CKPT_DIR = flags.DEFINE_string(
    'ckpt_dir', '', 'Set by --isolate for its children: the HF checkpoint '
    'the torch side loads (the JAX side re-initialises from --seed).')

def shape_config(name: str) -> TransformerConfig:
  """The shape with this run's JAX-side options (--attention_block_size)."""
  cfg = TransformerConfig.from_preset(name)
  return cfg.replace(attention_block_size=_ATTN_BLOCK.value)


# JAX side ---------------------------------------------------------------------


def _optim_cfg() -> dict[str, Any]:
  return dict(name='adamw', lr=_LR.value, schedule='constant', b1=0.9,
              b2=0.999, eps=1e-8, weight_decay=_WEIGHT_DECAY.value)


def jax_init_and_save(cfg: TransformerConfig, ckpt_dir: str):
  """(state, shardings, mesh): a fresh sharded state, also saved as HF."""
  state, shardings, mesh = train_mfu.init_state(cfg, _SEED.value,
                                                _optim_cfg())
  hf.save_checkpoint(ckpt_dir, cfg, state.params)
  return state, shardings, mesh


class JaxSide:
  """jaxreason's jitted, donating train step with the SFT loss."""

  name = 'jax'

  def __init__(self, cfg, state, shardings, mesh, batch_np):
    self.loss_fn = train_mfu.sft_loss_fn(Transformer(cfg))
    self.train_step = make_train_step(self.loss_fn, shardings, mesh)
    self.state = state
    self.batch = jax.device_put(batch_np, batch_sharding(mesh))
    self.rng = jax.random.PRNGKey(_SEED.value + 1)
    self.donated = []

  def step(self) -> float:
    old = jax.tree.leaves(self.state.params)[0]
    self.state, metrics = self.train_step(self.state, self.batch, self.rng)
    jax.block_until_ready((self.state, metrics))
    self.donated.append(old.is_deleted())
    return float(metrics['loss'])

  def report(self) -> dict[str, Any]:
    cache_size = getattr(self.train_step, '_cache_size', lambda: None)()
    return {'compilations': cache_size, 'donated': all(self.donated)}

  def profile(self) -> dict[str, Any]:
    return train_profile.profile_jax(self, _STEPS.value, _TOP_OPS.value)

  def close(self) -> None:
    del self.state, self.batch



# torch side -------------------------------------------------------------------


class TorchSide:
  """transformers Qwen2ForCausalLM from the same checkpoint, torch AdamW."""

  def __init__(self, ckpt_dir: str, attn: str, batch_np):
    import torch  # pylint: disable=g-import-not-at-top
    import transformers  # pylint: disable=g-import-not-at-top
    self.name = f'torch_{attn}'
    torch.set_num_threads(os.cpu_count())
    self.model = transformers.AutoModelForCausalLM.from_pretrained(
        ckpt_dir, dtype=torch.float32, attn_implementation=attn)
    self.model.config.use_cache = False
    self.model.train()
    params = [p for p in self.model.parameters() if p.requires_grad]
    self.num_params = sum(p.numel() for p in params)
    self.opt = torch.optim.AdamW(
        [{'params': [p for p in params if p.ndim >= 2],
          'weight_decay': _WEIGHT_DECAY.value},
         {'params': [p for p in params if p.ndim < 2], 'weight_decay': 0.0}],
        lr=_LR.value, betas=(0.9, 0.999), eps=1e-8)
    self.tokens = torch.from_numpy(batch_np['tokens'].astype(np.int64))

  def step(self) -> float:
    loss = self.model(input_ids=self.tokens, labels=self.tokens).loss
    loss.backward()
    self.opt.step()
    self.opt.zero_grad(set_to_none=True)
    return loss.detach().item()

  def report(self) -> dict[str, Any]:
    attn = self.model.config._attn_implementation  # pylint: disable=protected-access
    return {'num_params_hf': self.num_params, 'attn_implementation': attn}

  def profile(self) -> dict[str, Any]:
    return train_profile.profile_torch(self, _STEPS.value, _TOP_OPS.value)

  def close(self) -> None:
    del self.model, self.opt



# Driver -----------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  import flax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  cpu = platform.processor()
  with contextlib.suppress(OSError):
    with open('/proc/cpuinfo') as fp:
      cpu = next((l.split(':', 1)[1].strip() for l in fp
                  if l.startswith('model name')), cpu)
  return {
      'cpu_count': os.cpu_count(), 'cpu': cpu, 'platform': platform.platform(),
      'python': sys.version.split()[0], 'jax': jax.__version__,
      'jaxlib': jaxlib.__version__, 'flax': flax.__version__,
      'optax': optax.__version__,
      'torch': torch.__version__, 'transformers': transformers.__version__,
      'jax_devices': [str(d) for d in jax.devices()],
      'torch_threads': os.cpu_count(),
      'torch_float32_matmul_precision': torch.get_float32_matmul_precision(),
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'jax_default_matmul_precision': jax.config.jax_default_matmul_precision,
      'load_average_start': os.getloadavg(),
  }


def run_sides(sides, tokens_per_step: int) -> dict[str, dict[str, Any]]:
  """Warms every side up, then times their steps interleaved, so that load
  from other processes falls on all sides alike; then profiles each."""
  out = {}
  for side in sides:
    print(f'#   {side.name}: {_WARMUP.value} warmup steps', flush=True)
    warm = _time_loop(side.step, _WARMUP.value)
    out[side.name] = {'first_step_s': warm[0], 'step_times_s': [],
                      'losses': []}
  print(f'#   {_STEPS.value} timed steps'
        + (', sides interleaved' if len(sides) > 1 else ''), flush=True)
  for _ in range(_STEPS.value):
    for side in sides:
      t0 = time.perf_counter()
      loss = side.step()
      out[side.name]['step_times_s'].append(time.perf_counter() - t0)
      out[side.name]['losses'].append(loss)
  for side in sides:
    r = out[side.name]
    r.update(side.report())
    r['step_time_median_s'] = statistics.median(r['step_times_s'])
    r['tokens_per_s'] = tokens_per_step * len(r['step_times_s']) / sum(
        r['step_times_s'])
    if _PROFILE.value:
      print(f'#   profiling {side.name}', flush=True)
      r['profile'] = side.profile()
    side.close()
  gc.collect()
  return out


def run_isolated(shape: str, ckpt: str, tmp: str) -> dict[str, dict]:
  """Runs each side of `shape` in a child process; {side name: result}."""
  sides = (['jax'] if 'jax' in _FRAMEWORKS.value else []) + (
      [f'torch:{a}' for a in _TORCH_ATTN.value]
      if 'torch' in _FRAMEWORKS.value else [])
  rounds: dict[str, list[dict]] = {}
  for r in range(_ROUNDS.value):
    for side in (sides if r % 2 == 0 else sides[::-1]):
      for k, v in _run_child(shape, side, ckpt, tmp).items():
        rounds.setdefault(k, []).append(v)
  out = {}
  for k, runs in rounds.items():
    out[k] = dict(max(runs, key=lambda v: v['tokens_per_s']),
                  rounds_tokens_per_s=[v['tokens_per_s'] for v in runs])
  return out


def _run_child(shape: str, side: str, ckpt: str, tmp: str) -> dict[str, dict]:
  """One side of `shape` in its own process: {side name: result}."""
  framework, _, attn = side.partition(':')
  path = os.path.join(tmp, f'{shape}_{framework}{attn}.json')
  cmd = [sys.executable, os.path.abspath(__file__), '--isolate=false',
         f'--ckpt_dir={ckpt}', f'--shapes={shape}',
         f'--frameworks={framework}', f'--torch_attn={attn or "sdpa"}',
         f'--batch={_BATCH.value}', f'--seq_len={_SEQ_LEN.value}',
         f'--steps={_STEPS.value}', f'--warmup={_WARMUP.value}',
         f'--lr={_LR.value}', f'--weight_decay={_WEIGHT_DECAY.value}',
         f'--seed={_SEED.value}', f'--profile={_PROFILE.value}',
         f'--attention_block_size={_ATTN_BLOCK.value}',
         f'--top_ops={_TOP_OPS.value}', '--matmul_n=256',
         '--matmul_iters=1', '--gemm_iters=0',  # The parent times GEMMs.
         f'--output={path}']
  print(f'#   {side}: own process', flush=True)
  subprocess.run(cmd, check=True)
  with open(path) as f:
    child = json.load(f)['results'][0]
  return {k: v for k, v in child.items()
          if k == 'jax' or k.startswith('torch_')}


def _fmt_params(n: int) -> str:
  return f'{n / 1e6:.1f}M'


def main(argv):
  del argv
  if 'xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', ''):
    raise app.UsageError('Do not fake CPU devices in the benchmark: unset '
                         '--xla_force_host_platform_device_count in XLA_FLAGS.')
  if _WARMUP.value < 1 or _STEPS.value < 1:
    raise app.UsageError('--warmup and --steps must be >= 1 (the first step '
                         'compiles).')
  for name in _FRAMEWORKS.value:
    if name not in ('jax', 'torch'):
      raise app.UsageError(f'--frameworks: unknown {name!r}')
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())

  info = machine_info()
  print(f'# {info["cpu"]}, {info["cpu_count"]} CPUs, load '
        f'{info["load_average_start"]}, jax {info["jax"]}, torch '
        f'{info["torch"]}, XLA_FLAGS={info["xla_flags"]!r}', flush=True)
  mm = matmul_rates(_MATMUL_N.value, _MATMUL_ITERS.value)
  train_profile._print_matmul(mm)
  b, t = _BATCH.value, _SEQ_LEN.value
  results = []
  for shape in _SHAPES.value:
    cfg = shape_config(shape)
    batch_np = train_mfu.random_batch(cfg, b, t, _SEED.value)
    fpt = flops_per_token(cfg, t)
    res: dict[str, Any] = {
        'shape': shape, 'config': {k: getattr(cfg, k) for k in (
            'vocab_size', 'num_layers', 'embed_dim', 'mlp_dim', 'num_heads',
            'num_kv_heads', 'qkv_bias', 'tie_embeddings', 'dtype',
            'attention_block_size')},
        'num_params': cfg.num_params(), 'flops_per_token': fpt,
        'batch': b, 'seq_len': t}
    if _GEMM_ITERS.value > 0:
      res['dense_gemms'] = train_profile.dense_gemm_times(
          cfg, b * t, _GEMM_ITERS.value)
      g = res['dense_gemms']
      print(f'# {shape}: the dense GEMMs of one step alone: jax '
            f'{g["jax_s"]:.2f} s, torch {g["torch_s"]:.2f} s '
            f'({g["ratio_jax_over_torch"]:.2f}x)', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
      ckpt = _CKPT_DIR.value or os.path.join(tmp, shape)
      sides = []
      if _ISOLATE.value:
        jax_init_and_save(cfg, ckpt)  # The checkpoint both sides load.
        res.update(run_isolated(shape, ckpt, tmp))
      else:
        if 'jax' in _FRAMEWORKS.value or not _CKPT_DIR.value:
          # A child re-initialises from the seed: the parent's parameters.
          state, shardings, mesh = jax_init_and_save(
              cfg, os.path.join(tmp, 'init') if _CKPT_DIR.value else ckpt)
          if 'jax' in _FRAMEWORKS.value:
            sides.append(JaxSide(cfg, state, shardings, mesh, batch_np))
          del state
        if 'torch' in _FRAMEWORKS.value:
          sides += [TorchSide(ckpt, attn, batch_np)
                    for attn in _TORCH_ATTN.value]
        res.update(run_sides(sides, b * t))
    for k in [k for k in res if k.startswith('torch_')]:
      if 'jax' in res:
        res[f'ratio_jax_over_{k}'] = (res['jax']['tokens_per_s']
                                      / res[k]['tokens_per_s'])
        res[f'loss_max_abs_diff_vs_{k}'] = float(np.max(np.abs(np.subtract(
            res['jax']['losses'], res[k]['losses']))))
    results.append(res)
    _write(info, mm, results)

  # Measured again after the runs: with other processes about, the best of
  # the two is the better estimate of the peak (else MFU may exceed 100%).
  mm_end = matmul_rates(_MATMUL_N.value, _MATMUL_ITERS.value)
  train_profile._print_matmul(mm_end)
  mm = {'start': mm, 'end': mm_end, 'peak_flops_per_s': max(
      mm['peak_flops_per_s'], mm_end['peak_flops_per_s'])}
  for res in results:
    for k in [k for k in res if k == 'jax' or k.startswith('torch_')]:
      res[k]['mfu'] = (res['flops_per_token']['total']
                       * res[k]['tokens_per_s'] / mm['peak_flops_per_s'])
  info['load_average_end'] = os.getloadavg()
  print_table(results)
  if _PROFILE.value:
    train_profile.print_profiles(results)
  _write(info, mm, results)
  print(f'\nWrote {os.path.abspath(_OUTPUT.value)}')


def _write(info, mm, results) -> None:
  settings = {k: f.value for k, f in (
      ('shapes', _SHAPES), ('batch', _BATCH), ('seq_len', _SEQ_LEN),
      ('steps', _STEPS), ('warmup', _WARMUP), ('lr', _LR),
      ('weight_decay', _WEIGHT_DECAY), ('torch_attn', _TORCH_ATTN),
      ('profile', _PROFILE), ('seed', _SEED),
      ('attention_block_size', _ATTN_BLOCK), ('rounds', _ROUNDS))}
  settings['isolate'] = _ISOLATE.value
  with open(_OUTPUT.value, 'w') as fp:
    json.dump({'machine': info, 'settings': settings, 'matmul': mm,
               'flops_formula': '6*N_matmul + 12*L*T*H*D_head per token; '
                                'MFU against matmul.peak_flops_per_s',
               'results': results}, fp, indent=1, default=str)


def print_table(results) -> None:
  print('\n| shape | params | jax tok/s | torch tok/s | jax/torch | jax MFU | '
        'torch MFU | loss diff | GEMMs alone jax/torch | rest of step s '
        'jax / torch |')
  print('|---|---|---|---|---|---|---|---|---|---|')
  for r in results:
    jx = r.get('jax')
    torch_keys = [k for k in r if k.startswith('torch_')] or [None]
    for k in torch_keys:
      th = r.get(k) if k else None
      cell = lambda x, key, fmt: format(x[key], fmt) if x else '-'
      ratio = r.get(f'ratio_jax_over_{k}')
      diff = r.get(f'loss_max_abs_diff_vs_{k}')
      print(f'| {r["shape"]} | {_fmt_params(r["num_params"])} | '
            f'{cell(jx, "tokens_per_s", ".0f")} | '
            f'{cell(th, "tokens_per_s", ".0f")}'
            f'{f" ({k[6:]})" if k else ""} | '
            f'{"-" if ratio is None else f"{ratio:.2f}"} | '
            f'{cell(jx, "mfu", ".1%")} | {cell(th, "mfu", ".1%")} | '
            f'{"-" if diff is None else f"{diff:.1e}"} | '
            f'{_gemm_cells(r, jx, th)} |')


def _gemm_cells(r, jx, th) -> str:
  """'GEMMs alone ratio | step time outside the GEMMs, jax / torch'."""
  g = r.get('dense_gemms')
  if not g:
    return '- | -'
  tokens = r['batch'] * r['seq_len']
  rest = lambda side, key: (f'{tokens / side["tokens_per_s"] - g[key]:.1f}'
                            if side else '-')
  return (f'{g["ratio_jax_over_torch"]:.2f} | {rest(jx, "jax_s")} / '
          f'{rest(th, "torch_s")}')


if __name__ == '__main__':
  app.run(main)
