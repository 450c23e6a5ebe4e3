r"""Decode throughput: jaxreason's Sampler vs transformers `generate` and tunix.

  # The full run (Qwen2.5-0.5B shape, float32; hours on a 2-core CPU, run it on
  # an idle machine). tunix lives in its own venv (see "tunix" below):
  JAX_PLATFORMS=cpu python tools/bench_decode.py \
      --tunix_python=.venv-bench/bin/python --output=bench_decode.json
  # Quick check on a small shape (a few minutes):
  JAX_PLATFORMS=cpu python tools/bench_decode.py \
      --model_set=embed_dim=256 --model_set=num_layers=4 \
      --model_set=vocab_size=4096 --model_set=mlp_dim=1024 \
      --model_set=num_heads=4 --model_set=num_kv_heads=2 \
      --cases=batch1,batch8,shared_prefix,long --new_tokens=32 \
      --long_new=256 --long_cache=512 --long_window=64 --output=/tmp/bd.json

The tool writes a random-weight Qwen2 checkpoint of the shape (`--preset`,
default qwen2.5-0.5b, with `--model_set=FIELD=VALUE` overrides) once, as a
float32 Hugging Face safetensors folder in `--ckpt_dir`, and every framework
reads those weights (bfloat16 cases cast them on load). No EOS id exists
anywhere (the checkpoint has none, jaxreason gets eos_ids=(), tunix EOS -1,
transformers eos_token_id=None), so every row generates exactly the requested
tokens; the generated counts are checked and recorded.

Cases (`--cases`, comma-separated; each writes the JSON when done, and a run
with the same settings resumes: finished (case, framework) pairs are skipped):

* `batch<B>` (batch1, batch8, batch32): B different random prompts of
  `--prompt_len` (128) tokens, `--new_tokens` (128) new tokens each, float32,
  temperature `--temperature` (1.0) with top-p `--top_p` (0.95), no top-k, cache
  of prompt_len + new_tokens positions (jaxreason rounds it up to its block).
* `bf16_batch<B>`: the same with bfloat16 weights and compute
  (`--bf16_frameworks`, default jaxreason and tunix).
* `shared_prefix`: `--shared_samples` (16) samples of one
  `--shared_prompt_len` (1024) token prompt. jaxreason encodes the prompt once
  (`prefill(..., num_samples=16)`) and, as `jaxreason_repeated`, the prompt
  repeated 16 times; the peers cannot share a prefix and get the repeated one.
* `long`: batch `--long_batch` (8), `--long_new` (4096) new tokens after a
  prompt_len prompt, in a cache of `--long_cache` (8192) positions; tokens/s
  over the first and the last `--long_window` (512) tokens.

Timing. Everything is compiled (warmed up) at the same shapes before it is
timed; then one (`--repeats`; the median run is kept) prefill and decode
are timed with `block_until_ready` (jaxreason, tunix) or around the call
(transformers). Reported per framework:
  tok/s        = generated tokens / (prefill + decode seconds): what a caller
                 of `generate` waits for;
  decode tok/s = generated tokens / decode seconds.
* jaxreason: `Sampler(config, cache_size=..., eos_ids=())`, `prefill`, then
  `decode` with `SamplingParams.make(B, temperature, top_p)`. The decode is
  warmed up by one step of the same executable (`sampler.decode_loop` with the
  budget `Sampler.decode` uses and max_new_tokens 1); the compile-trace counters
  are recorded to show nothing was traced during the timed run.
* transformers: `AutoModelForCausalLM.from_pretrained` (torch, all cores),
  `generate(do_sample=True, temperature, top_p, top_k=0, eos_token_id=None)`
  under `inference_mode`; prefill seconds = the faster of two `generate`s of 1
  new token, decode seconds = the N-token `generate` minus that (an estimate:
  decode tok/s is left out if noise makes it non-positive). It runs in a
  subprocess.
* tunix: `tunix.models.qwen2` built from its `ModelConfig` and loaded from the
  safetensors folder (`params.create_model_from_safe_tensors`), sampled with
  `tunix.generate.sampler.Sampler(model, tokenizer, CacheConfig(cache_size,
  ...))` in top-p mode (top_k None: the whole vocabulary). The tool calls the
  three steps `Sampler.__call__` runs (`init_sample_state`, the jitted prefill,
  the jitted decode while_loop) so that prefill and decode are timed
  separately, on token ids (an id-only tokenizer; no text). Its decode is
  warmed up by a run of the same executable with total_sampling_steps (a traced
  leaf of the loop state) set one step past the prompt. It runs in a
  subprocess of `--tunix_python` (default: .venv-bench/bin/python if present).

The long case. jaxreason decodes all long_new tokens in three calls that
continue one DecodeState: long_window tokens (timed: "early"), then
long_new - 2 * long_window (timed: "middle"), then long_window ("late", the
cache holds prompt_len + long_new - long_window tokens when it starts). tunix
generates long_window tokens twice: from the prompt_len prompts ("early"),
and from a prompt of prompt_len + long_new - long_window tokens ("late", so
its cache holds as many tokens as jaxreason's at the start of its late
window); that prompt is prefilled at batch 1 (tunix's prefill materializes
[T, cache_size] scores per head) and the state tiled to the batch. Both use
cache_size = long_cache; tunix attends over the whole cache at every step.

Bandwidth bound. The read bandwidth is measured once (the best of a jitted
jnp.sum and numpy's sum over `--bandwidth_mib` of float32, and a jitted
matrix-vector product of that size). Bytes read per token at batch 1 = all
parameter bytes (the tied embedding is read whole by the output projection)
+ the K and V cache of every layer at the mean context length
(prompt_len + (new_tokens + 1) / 2); bound tok/s = bandwidth / bytes, and
share = decode tok/s / bound. The same bound is also reported at the rate
XLA:CPU's own matrix-vector products stream weights (`matvec_chain`: one jitted
chain of products by random matrices of every shape the model has, in its
layouts, measured when batch1 runs; float32 only): what a decode step built
from XLA dots can reach on this machine.

Goals (from the issue), checked at the end: batch 1 float32 tok/s >= tunix's
and decode tok/s >= 90% of the bound; bfloat16 batch 1 >= 1.6x tunix float32;
batch 8 and 32 >= 1.5x tunix; shared prefix >= 3x faster (total seconds) than
the repeated prompt; long: early tok/s >= 2x tunix's.

tunix. google-tunix 0.1.7 pins safetensors<0.8, which would downgrade
safetensors, transformers and huggingface_hub in the main venv, so it goes in
its own venv with the same jax:
  python3.11 -m venv .venv-bench
  .venv-bench/bin/pip install 'jax==0.10.2' 'jaxlib==0.10.2' 'flax==0.12.8' \
      google-tunix
  .venv-bench/bin/pip install --no-deps -e .
(the worker also finds jaxreason through PYTHONPATH). transformers runs in a
subprocess of this interpreter (`--transformers_python` to change it).
"""

from __future__ import annotations

import ast
import dataclasses
import gc
import hashlib
import json
import os
import platform
import re
import sys
import tempfile
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from jaxreason import sampling
from jaxreason.models import hf
from jaxreason.models.transformer import TransformerConfig, init_params
from jaxreason.sampling import sampler as sampler_lib

# `python tools/bench_decode.py`, its `--worker` subprocesses and tests loading
# this file by path alike: benchlib sits next to it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=g-import-not-at-top,wrong-import-position,unused-import
from benchlib.decode_peers import _block, _prompts, _summary, _worker_main
from benchlib.decode_peers import run_worker, transformers_worker
from benchlib.decode_peers import tunix_worker
from benchlib import cli
from benchlib.decode_report import _fmt, bandwidth_bound, check_goals
from benchlib.decode_report import compute_ratios, format_report
from benchlib.decode_report import kv_bytes_per_position, measure_bandwidth
from benchlib.decode_report import matvec_shapes, measure_matvec_chain
from benchlib.decode_report import param_bytes
# pylint: enable=g-import-not-at-top,wrong-import-position,unused-import

DEFAULT_CASES = ('batch1', 'batch8', 'batch32', 'bf16_batch1', 'bf16_batch8',
                 'shared_prefix', 'long')
FRAMEWORKS = ('jaxreason', 'transformers', 'tunix')
_CASE_RE = re.compile(r'^(bf16_)?batch(\d+)$')
# Settings that change the numbers; a resumed run must match them.
_SETTING_FLAGS = ('prompt_len', 'new_tokens', 'shared_prompt_len',
                  'shared_samples', 'long_batch', 'long_new', 'long_cache',
                  'long_window', 'top_p', 'temperature', 'seed', 'repeats')


def _define_flags(fv: flags.FlagValues) -> None:
  """Defined on a fresh FlagValues in `main`, so tests can run it in-process."""
  d = dict(flag_values=fv)
  flags.DEFINE_string('preset', 'qwen2.5-0.5b', 'Model shape preset.', **d)
  flags.DEFINE_multi_string('model_set', [], 'FIELD=VALUE shape override.',
                            **d)
  flags.DEFINE_list('cases', list(DEFAULT_CASES),
                    'batch<B>, bf16_batch<B>, shared_prefix, long.', **d)
  flags.DEFINE_list('frameworks', list(FRAMEWORKS), 'Frameworks to run.', **d)
  flags.DEFINE_list('bf16_frameworks', ['jaxreason', 'tunix'],
                    'Frameworks for the bf16_* cases.', **d)
  flags.DEFINE_integer('prompt_len', 128, 'Prompt tokens (batch, long).', **d)
  flags.DEFINE_integer('new_tokens', 128, 'New tokens (batch, shared).', **d)
  flags.DEFINE_integer('shared_prompt_len', 1024, 'Shared prompt tokens.', **d)
  flags.DEFINE_integer('shared_samples', 16, 'Samples of the shared prompt.',
                       **d)
  flags.DEFINE_integer('long_batch', 8, 'Batch of the long case.', **d)
  flags.DEFINE_integer('long_new', 4096, 'New tokens of the long case.', **d)
  flags.DEFINE_integer('long_cache', 8192, 'Cache size of the long case.', **d)
  flags.DEFINE_integer('long_window', 512, 'Timed first / last tokens.', **d)
  flags.DEFINE_float('top_p', 0.95, 'Top-p of every sampler.', **d)
  flags.DEFINE_float('temperature', 1.0, 'Temperature of every sampler.', **d)
  flags.DEFINE_integer('seed', 0, 'Weights, prompts and sampling seed.', **d)
  flags.DEFINE_integer('repeats', 1, 'Timed runs per case (median kept).', **d)
  flags.DEFINE_integer('bandwidth_mib', 1024, 'Bandwidth test size.', **d)
  flags.DEFINE_string('ckpt_dir', None, 'Checkpoint folder (default: under '
                      'the temp dir, named by the shape); reused.', **d)
  flags.DEFINE_string('output', 'bench_decode.json', 'JSON results.', **d)
  flags.DEFINE_bool('resume', True, 'Skip (case, framework) pairs already in '
                    '--output with the same settings.', **d)
  flags.DEFINE_list('redo', [], 'Frameworks to rerun even if resumed '
                    '(e.g. tunix, jaxreason_repeated).', **d)
  flags.DEFINE_string('tunix_python', '', 'Python with google-tunix (default: '
                      '.venv-bench/bin/python if present, else this one).',
                      **d)
  flags.DEFINE_string('transformers_python', '', 'Python with transformers '
                      'and torch (default: this one).', **d)
  flags.DEFINE_integer('worker_timeout', 4 * 3600, 'Seconds per subprocess.',
                       **d)
  # Internal: the subprocess side.
  flags.DEFINE_enum('worker', None, ['transformers', 'tunix'], 'Internal.', **d)
  flags.DEFINE_string('worker_spec', None, 'Internal.', **d)
  flags.DEFINE_string('worker_out', None, 'Internal.', **d)


# Model, checkpoint, prompts ---------------------------------------------------


def model_config(preset: str, model_set: Sequence[str]) -> TransformerConfig:
  """The preset with overrides; no EOS / BOS ids (random weights)."""
  overrides = {}
  for item in model_set:
    key, eq, value = item.partition('=')
    if not eq:
      raise app.UsageError(f'--model_set expects FIELD=VALUE, got {item!r}')
    try:
      overrides[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      overrides[key] = value
  config = TransformerConfig.from_preset(preset, **overrides)
  return config.replace(eos_token_id=None, bos_token_id=None,
                        dtype='float32', param_dtype='float32')


def _shape_key(config: TransformerConfig, seed: int) -> str:
  blob = json.dumps([dataclasses.asdict(config), seed], sort_keys=True,
                    default=str)
  return hashlib.sha1(blob.encode()).hexdigest()[:10]


def write_checkpoint(config: TransformerConfig, path: str, seed: int) -> bool:
  """Random float32 weights in HF format at path; False if already there."""
  marker = os.path.join(path, 'bench_decode_shape.json')
  key = _shape_key(config, seed)
  if os.path.exists(marker):
    with open(marker) as fp:
      if json.load(fp).get('key') == key:
        return False
  params = jax.jit(init_params, static_argnums=0)(config, jax.random.key(seed))
  hf.save_checkpoint(path, config, params, dtype='float32')
  del params
  with open(marker, 'w') as fp:
    json.dump({'key': key, 'config': dataclasses.asdict(config)}, fp,
              default=str)
  return True


# Cases ------------------------------------------------------------------------


def case_plan(name: str, f: flags.FlagValues) -> dict[str, Any]:
  """Shapes and frameworks of one case (validated)."""
  m = _CASE_RE.match(name)
  if m:
    bf16, batch = bool(m.group(1)), int(m.group(2))
    if batch < 1:
      raise app.UsageError(f'case {name}: batch must be >= 1')
    return dict(kind='generate', dtype='bfloat16' if bf16 else 'float32',
                batch=batch, prompt_len=f.prompt_len,
                new_tokens=f.new_tokens,
                cache_size=f.prompt_len + f.new_tokens,
                frameworks=list(f.bf16_frameworks if bf16 else FRAMEWORKS))
  if name == 'shared_prefix':
    return dict(kind='shared', dtype='float32', batch=f.shared_samples,
                prompt_len=f.shared_prompt_len, new_tokens=f.new_tokens,
                cache_size=f.shared_prompt_len + f.new_tokens,
                frameworks=['jaxreason', 'jaxreason_repeated', 'transformers',
                            'tunix'])
  if name == 'long':
    if f.long_new < 2 * f.long_window:
      raise app.UsageError(f'--long_new={f.long_new} must be at least 2 * '
                           f'--long_window={f.long_window}')
    if f.prompt_len + f.long_new > f.long_cache:
      raise app.UsageError('--prompt_len + --long_new exceeds --long_cache')
    return dict(kind='long', dtype='float32', batch=f.long_batch,
                prompt_len=f.prompt_len, new_tokens=f.long_new,
                cache_size=f.long_cache, window=f.long_window,
                frameworks=['jaxreason', 'tunix'])
  raise app.UsageError(f'unknown case {name!r}: expected batch<B>, '
                       'bf16_batch<B>, shared_prefix or long')


def case_prompts(name: str, plan: dict[str, Any], vocab_size: int,
                 seed: int) -> np.ndarray:
  """The prompt rows every framework gets ([1, T] for shared_prefix)."""
  rows = 1 if plan['kind'] == 'shared' else plan['batch']
  return _prompts(vocab_size, rows, plan['prompt_len'], seed, name)



# jaxreason --------------------------------------------------------------------


class JaxSide:
  """jaxreason's Sampler in this process; params cached per dtype."""

  def __init__(self, ckpt: str, f: flags.FlagValues):
    self.ckpt, self.f = ckpt, f
    self._loaded: dict[str, Any] = {}

  def load(self, dtype: str):
    if dtype not in self._loaded:
      self._loaded.clear()
      gc.collect()
      config, params = hf.load_checkpoint(self.ckpt, dtype=dtype,
                                          param_dtype=dtype)
      self._loaded[dtype] = (config, jax.device_put(params))
    return self._loaded[dtype]

  def _setup(self, plan):
    config, params = self.load(plan['dtype'])
    sampler = sampling.Sampler(config, cache_size=plan['cache_size'],
                               eos_ids=())
    sp = sampling.SamplingParams.make(plan['batch'],
                                      temperature=self.f.temperature,
                                      top_p=self.f.top_p)
    return sampler, params, sp, jax.random.key(self.f.seed)

  @staticmethod
  def _warm_decode(sampler, params, state, sp, rng, n: int) -> None:
    """Compiles `sampler.decode(..., n)` by one step of the same executable.

    Consumes state. Mirrors `Sampler.decode`: its budget (static) is
    min(bucket(n), bucket(cache_size)); max_new_tokens (traced) is 1.
    """
    budget = min(sampler_lib.bucket(n), sampler_lib.bucket(sampler.cache_size))
    _block(sampler_lib.decode_loop(
        params, state, sp, rng, jnp.ones((state.batch_size,), jnp.int32),
        sampler.criteria, config=sampler.config, attention=sampler.attention,
        budget=budget))

  def generate(self, plan, prompts: np.ndarray, num_samples: int
               ) -> dict[str, Any]:
    """prefill(prompts, num_samples) + decode(new_tokens), timed."""
    sampler, params, sp, rng = self._setup(plan)
    n = plan['new_tokens']
    prompt_list = [p.tolist() for p in prompts]
    state = _block(sampler.prefill(params, prompt_list, num_samples))
    self._warm_decode(sampler, params, state, sp, rng, n)
    traces = dict(sampler_lib.TRACE_COUNTS)
    runs = []
    for _ in range(self.f.repeats):
      gc.collect()
      t0 = time.perf_counter()
      state = _block(sampler.prefill(params, prompt_list, num_samples))
      t1 = time.perf_counter()
      state, out = _block(sampler.decode(params, state, sp, rng, n))
      t2 = time.perf_counter()
      runs.append(dict(prefill_s=t1 - t0, decode_s=t2 - t1,
                       generated_tokens=int(np.asarray(out.lengths).sum())))
      del state, out
    result = _summary(runs, plan['batch'] * n)
    result['cache_size'] = sampler.cache_size
    result['traced_during_timing'] = {
        k: v - traces.get(k, 0) for k, v in sampler_lib.TRACE_COUNTS.items()}
    return result

  def long(self, plan, prompts: np.ndarray) -> dict[str, Any]:
    """One DecodeState decoded in early / middle / late calls, each timed."""
    sampler, params, sp, rng = self._setup(plan)
    w, total = plan['window'], plan['new_tokens']
    segments = [('early', w), ('middle', total - 2 * w), ('late', w)]
    segments = [(name, n) for name, n in segments if n > 0]
    t0 = time.perf_counter()
    state = _block(sampler.prefill(params, [p.tolist() for p in prompts]))
    prefill_s = time.perf_counter() - t0  # Includes compilation.
    for n in sorted({n for _, n in segments}):
      self._warm_decode(sampler, params, state.copy(), sp, rng, n)
    traces = dict(sampler_lib.TRACE_COUNTS)
    result = {'cache_size': sampler.cache_size,
              'prefill_s_with_compile': prefill_s}
    for name, n in segments:
      start = int(np.asarray(state.lengths).min())
      gc.collect()
      t0 = time.perf_counter()
      state, out = _block(sampler.decode(params, state, sp, rng, n))
      seconds = time.perf_counter() - t0
      tokens = int(np.asarray(out.lengths).sum())
      result[name] = dict(start_position=start, seconds=seconds,
                          generated_tokens=tokens,
                          expected_tokens=plan['batch'] * n,
                          tok_s=tokens / seconds)
      del out
    result['traced_during_timing'] = {
        k: v - traces.get(k, 0) for k, v in sampler_lib.TRACE_COUNTS.items()}
    return result


def run_jaxreason(side: JaxSide, name: str, plan, prompts,
                  variant: str) -> dict[str, Any]:
  if plan['kind'] == 'long':
    return side.long(plan, prompts)
  if plan['kind'] == 'shared':
    if variant == 'jaxreason':  # One prefill, `batch` samples.
      return side.generate(plan, prompts, plan['batch'])
    return side.generate(plan, np.repeat(prompts, plan['batch'], 0), 1)
  return side.generate(plan, prompts, 1)


# Main -------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
  import flax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  cpu = platform.processor()
  try:
    with open('/proc/cpuinfo') as fp:
      cpu = next((l.split(':', 1)[1].strip() for l in fp
                  if l.startswith('model name')), cpu)
  except OSError:
    pass
  mem = None
  try:
    mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  except (ValueError, OSError):
    pass
  return {
      'cpu': cpu, 'cpu_count': os.cpu_count(),
      'affinity': len(os.sched_getaffinity(0)) if hasattr(
          os, 'sched_getaffinity') else None,
      'memory_bytes': mem, 'platform': platform.platform(),
      'python': sys.version.split()[0], 'jax': jax.__version__,
      'jaxlib': jaxlib.__version__, 'flax': flax.__version__,
      'numpy': np.__version__, 'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'devices': [str(d) for d in jax.devices()],
  }


def _settings(f: flags.FlagValues, config: TransformerConfig) -> dict[str, Any]:
  s = {k: getattr(f, k) for k in _SETTING_FLAGS}
  s['model'] = dataclasses.asdict(config)
  s['model']['rope_scaling'] = (None if config.rope_scaling is None else
                                dataclasses.asdict(config.rope_scaling))
  s['model_name'] = f.preset + ''.join(f' {x}' for x in f.model_set)
  s['num_params'] = config.num_params()
  return s


def _write_json(path: str, results: dict[str, Any]) -> None:
  results['ratios'] = compute_ratios(results)
  results['goals'] = check_goals(results)
  cli.write_json(path, results)


def run(f: flags.FlagValues) -> dict[str, Any]:
  """Runs the requested cases; returns (and writes) the results."""
  if jax.default_backend() != 'cpu':
    logging.warning('bench_decode is meant for the CPU; backend is %s',
                    jax.default_backend())
  if 'xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', ''):
    logging.warning('XLA_FLAGS fakes several CPU devices; numbers may differ '
                    'from a plain run')
  for fw in list(f.frameworks) + list(f.bf16_frameworks):
    if fw not in FRAMEWORKS:
      raise app.UsageError(f'unknown framework {fw!r}; known: {FRAMEWORKS}')
  config = model_config(f.preset, f.model_set)
  plans = {name: case_plan(name, f) for name in f.cases}
  settings = _settings(f, config)
  results: dict[str, Any] = {}
  if f.resume and os.path.exists(f.output):
    with open(f.output) as fp:
      results = json.load(fp)
    if results.get('settings') != json.loads(json.dumps(settings,
                                                        default=str)):
      raise app.UsageError(f'{f.output} holds results of other settings; use '
                           '--noresume to overwrite it or another --output')
  results['settings'] = settings
  results.setdefault('machine', {}).update(machine_info())
  results['machine']['load_average_start'] = os.getloadavg()
  results.setdefault('cases', {})
  ckpt = f.ckpt_dir or os.path.join(tempfile.gettempdir(), 'bench_decode',
                                    _shape_key(config, f.seed))
  t0 = time.perf_counter()
  if write_checkpoint(config, ckpt, f.seed):
    print(f'# wrote checkpoint {ckpt} ({time.perf_counter() - t0:.0f}s)',
          flush=True)
  results['checkpoint'] = ckpt
  workdir = os.path.join(ckpt, 'workers')
  os.makedirs(workdir, exist_ok=True)
  if 'bandwidth' not in results:
    results['bandwidth'] = measure_bandwidth(f.bandwidth_mib)
    _write_json(f.output, results)
  chains = results.setdefault('matvec_chain', {})
  # float32 only: XLA:CPU's bfloat16 matvecs at these shapes run at a few
  # GB/s in such a chain (slower than the model's own bf16 decode), so a
  # bf16 chain says nothing about a ceiling.
  for case in ('batch1',):
    dtype = plans[case]['dtype'] if case in plans else None
    if dtype and dtype not in chains:
      chains[dtype] = measure_matvec_chain(config, dtype)
      print(f'# matvec chain {dtype}: '
            f'{chains[dtype]["bytes_per_s"] / 1e9:.1f} GB/s', flush=True)
      _write_json(f.output, results)
  jax_side = JaxSide(ckpt, f)
  for name, plan in plans.items():
    entry = results['cases'].setdefault(name, {'plan': plan, 'results': {}})
    entry['plan'] = plan
    prompts = case_prompts(name, plan, config.vocab_size, f.seed)
    for fw in plan['frameworks']:
      base = 'jaxreason' if fw.startswith('jaxreason') else fw
      if base not in f.frameworks:
        continue
      done = entry['results'].get(fw)
      if done and 'error' not in done and fw not in f.redo and (
          base not in f.redo):
        print(f'# {name} {fw}: done (resumed)', flush=True)
        continue
      print(f'# {name} {fw} ...', flush=True)
      load = os.getloadavg()
      t0 = time.perf_counter()
      if base == 'jaxreason':
        try:
          r = run_jaxreason(jax_side, name, plan, prompts, fw)
        except Exception as e:  # pylint: disable=broad-except
          logging.exception('%s %s failed', name, fw)
          r = {'error': f'{type(e).__name__}: {e}'}
      else:
        rows = (np.repeat(prompts, plan['batch'], 0)
                if plan['kind'] == 'shared' else prompts)
        spec = dict(case=name, ckpt=ckpt, prompts=rows, seed=f.seed,
                    top_p=f.top_p, temperature=f.temperature,
                    repeats=f.repeats,
                    **{k: v for k, v in plan.items() if k != 'frameworks'})
        r = run_worker(base, spec, workdir, f)
      r['load_average_before'] = load
      r['wall_s'] = time.perf_counter() - t0
      entry['results'][fw] = r
      _write_json(f.output, results)
      if 'error' in r:
        print(f'# {name} {fw}: ERROR {r["error"]}', flush=True)
      elif 'tok_s' in r:
        print(f'# {name} {fw}: {r["tok_s"]:.2f} tok/s, decode '
              f'{_fmt(r["decode_tok_s"])} tok/s ({r["generated_tokens"]} '
              'tokens)', flush=True)
      else:
        print(f'# {name} {fw}: ' + ', '.join(
            f'{w} {r[w]["tok_s"]:.2f} tok/s' for w in ('early', 'middle',
                                                      'late') if w in r),
              flush=True)
  return cli.finish(f.output, results, _write_json, format_report)


def main(argv: Sequence[str],
         fv: flags.FlagValues | None = None) -> dict[str, Any] | None:
  """Runs with fv, or with argv (program name first) parsed into new flags."""
  fv = cli.parse(argv, fv, _define_flags)
  if fv.worker:
    _worker_main(fv)
    return None
  return run(fv)


if __name__ == '__main__':
  _define_flags(flags.FLAGS)
  app.run(lambda argv: main(argv, flags.FLAGS) and None)
