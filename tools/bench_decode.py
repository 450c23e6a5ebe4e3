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
share = decode tok/s / bound.

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
import subprocess
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def _prompts(vocab_size: int, rows: int, length: int, seed: int,
             salt: str) -> np.ndarray:
  """[rows, length] int32 ids in [1, vocab) (0 is tunix's pad id)."""
  digest = int(hashlib.sha1(salt.encode()).hexdigest()[:8], 16)
  rng = np.random.default_rng([seed, digest])
  return rng.integers(1, vocab_size, (rows, length), dtype=np.int32)


def param_bytes(config: TransformerConfig, dtype: str) -> int:
  return config.num_params() * jnp.dtype(dtype).itemsize


def kv_bytes_per_position(config: TransformerConfig, dtype: str) -> int:
  """K and V of every layer for one cached token."""
  return (2 * config.num_layers * config.num_kv_heads * config.head_size
          * jnp.dtype(dtype).itemsize)


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


def _summary(runs: list[dict[str, Any]], expected: int) -> dict[str, Any]:
  """The median run (by total seconds) with rates; all runs if several."""
  for r in runs:
    r['total_s'] = r['prefill_s'] + r['decode_s']
  best = sorted(runs, key=lambda r: r['total_s'])[len(runs) // 2]
  out = dict(best)
  out['expected_tokens'] = expected
  out['tok_s'] = best['generated_tokens'] / best['total_s']
  # None if noise made an estimated decode time (transformers) non-positive.
  out['decode_tok_s'] = (best['generated_tokens'] / best['decode_s']
                         if best['decode_s'] > 0 else None)
  if len(runs) > 1:
    out['runs'] = runs
  return out


def _block(tree: Any) -> Any:
  return jax.block_until_ready(tree)


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


# Subprocess workers -----------------------------------------------------------


def _worker_python(framework: str, f: flags.FlagValues) -> str:
  chosen = f.tunix_python if framework == 'tunix' else f.transformers_python
  if chosen:
    return chosen
  if framework == 'tunix':
    venv = os.path.join(REPO, '.venv-bench', 'bin', 'python')
    if os.path.exists(venv):
      return venv
  return sys.executable


def run_worker(framework: str, spec: dict[str, Any], workdir: str,
               f: flags.FlagValues) -> dict[str, Any]:
  """Runs this file as `--worker=framework` and returns its JSON result."""
  python = _worker_python(framework, f)
  tag = f'{spec["case"]}_{framework}'
  spec_file = os.path.join(workdir, f'{tag}_spec.json')
  out_file = os.path.join(workdir, f'{tag}_out.json')
  log_file = os.path.join(workdir, f'{tag}.log')
  np.save(os.path.join(workdir, f'{tag}_prompts.npy'), spec.pop('prompts'))
  spec['prompts_file'] = os.path.join(workdir, f'{tag}_prompts.npy')
  with open(spec_file, 'w') as fp:
    json.dump(spec, fp)
  if os.path.exists(out_file):
    os.remove(out_file)
  env = dict(os.environ)
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = os.pathsep.join(
      [REPO] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
  cmd = [python, os.path.abspath(__file__), f'--worker={framework}',
         f'--worker_spec={spec_file}', f'--worker_out={out_file}']
  t0 = time.perf_counter()
  try:
    with open(log_file, 'w') as log:
      proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            timeout=f.worker_timeout, check=False)
    rc = proc.returncode
  except subprocess.TimeoutExpired:
    rc = 'timeout'
  except OSError as e:  # No such interpreter, not executable.
    return {'error': f'{framework} worker could not start: {e}',
            'python': python}
  wall = time.perf_counter() - t0
  if rc == 0 and os.path.exists(out_file):
    with open(out_file) as fp:
      result = json.load(fp)
    result.update(python=python, worker_wall_s=wall)
    return result
  with open(log_file) as fp:
    tail = fp.read()[-3000:]
  return {'error': f'{framework} worker exited with {rc}', 'log_tail': tail,
          'python': python, 'log': log_file}


def _worker_main(f: flags.FlagValues) -> None:
  with open(f.worker_spec) as fp:
    spec = json.load(fp)
  spec['prompts'] = np.load(spec['prompts_file'])
  fn = transformers_worker if f.worker == 'transformers' else tunix_worker
  result = fn(spec)
  tmp = f.worker_out + '.tmp'
  with open(tmp, 'w') as fp:
    json.dump(result, fp)
  os.replace(tmp, f.worker_out)


def transformers_worker(spec: dict[str, Any]) -> dict[str, Any]:
  """`generate` of the HF model on spec['prompts'] (the repeated prompt)."""
  # Imported here: the tunix venv and the main process do not need torch.
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(spec['seed'])
  dtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16}[spec['dtype']]
  model = transformers.AutoModelForCausalLM.from_pretrained(spec['ckpt'],
                                                            dtype=dtype)
  model.eval()
  model.generation_config.eos_token_id = None
  model.generation_config.bos_token_id = None
  ids = torch.from_numpy(spec['prompts'].astype(np.int64))
  mask = torch.ones_like(ids)
  b, p = ids.shape
  n = spec['new_tokens']
  gen = dict(do_sample=True, temperature=spec['temperature'],
             top_p=spec['top_p'], top_k=0, eos_token_id=None, pad_token_id=0)

  def generate(new):
    t0 = time.perf_counter()
    with torch.inference_mode():
      out = model.generate(input_ids=ids, attention_mask=mask,
                           max_new_tokens=new, **gen)
    return out, time.perf_counter() - t0

  generate(2)  # Warm-up (allocations, lazy initialization).
  runs = []
  for _ in range(spec['repeats']):
    prefill_s = min(generate(1)[1] for _ in range(2))
    out, total_s = generate(n)
    runs.append(dict(prefill_s=prefill_s, decode_s=total_s - prefill_s,
                     generated_tokens=int(b * (out.shape[1] - p))))
  result = _summary(runs, b * n)
  result.update(versions={'torch': torch.__version__,
                          'transformers': transformers.__version__},
                attn_implementation=model.config._attn_implementation,  # pylint: disable=protected-access
                torch_threads=torch.get_num_threads())
  return result


class _IdTokenizer:
  """tunix's tokenizer interface over token ids written as text (unused)."""

  def encode(self, text: str, **_) -> list[int]:
    return [int(t) for t in text.split()]

  def decode(self, ids, **_) -> str:
    return ' '.join(str(int(i)) for i in ids)

  def bos_id(self):
    return None

  def eos_id(self) -> int:
    return -1

  def pad_id(self) -> int:
    return 0


def tunix_worker(spec: dict[str, Any]) -> dict[str, Any]:
  """tunix's Qwen2 and Sampler on the same weights and prompts."""
  # Imported here: google-tunix lives in its own venv (see the docstring).
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  from tunix.generate import sampler as tsampler  # pylint: disable=g-import-not-at-top
  from tunix.models.qwen2 import model as qmodel  # pylint: disable=g-import-not-at-top
  from tunix.models.qwen2 import params as qparams  # pylint: disable=g-import-not-at-top
  with open(os.path.join(spec['ckpt'], 'config.json')) as fp:
    hfc = json.load(fp)
  dtype = jnp.dtype(spec['dtype'])
  head_dim = hfc.get('head_dim') or hfc['hidden_size'] // hfc[
      'num_attention_heads']
  mcfg = qmodel.ModelConfig(
      num_layers=hfc['num_hidden_layers'], vocab_size=hfc['vocab_size'],
      embed_dim=hfc['hidden_size'], hidden_dim=hfc['intermediate_size'],
      num_heads=hfc['num_attention_heads'], head_dim=head_dim,
      num_kv_heads=hfc['num_key_value_heads'],
      rope_theta=hfc['rope_theta'], norm_eps=hfc['rms_norm_eps'],
      use_tied_embedding=hfc['tie_word_embeddings'], dtype=dtype,
      param_dtype=dtype)
  model = qparams.create_model_from_safe_tensors(spec['ckpt'], mcfg,
                                                 dtype=dtype)
  cache = tsampler.CacheConfig(cache_size=spec['cache_size'],
                               num_layers=mcfg.num_layers,
                               num_kv_heads=mcfg.num_kv_heads,
                               head_dim=head_dim)
  sampler = tsampler.Sampler(model, _IdTokenizer(), cache)
  sampler.eos_ids = jnp.array([-1], jnp.int32)  # Never sampled.
  params = sampler._flattened_transformer_state  # pylint: disable=protected-access
  prefill_fn = sampler._compiled_prefill_fn  # pylint: disable=protected-access
  decode_fn = sampler._compiled_decode_fn  # pylint: disable=protected-access

  def prefill(prompts: np.ndarray, new: int):
    """Sampler.__call__'s init + prefill (which samples the first token)."""
    state = sampler.init_sample_state(
        jnp.asarray(prompts), total_sampling_steps=prompts.shape[1] + new,
        include_logits=False, forbidden_token_ids=None,
        temperature=spec['temperature'], top_p=spec['top_p'], top_k=None,
        seed=jax.random.PRNGKey(spec['seed']), beam_size=None,
        include_logprobs=False)
    return _block(prefill_fn(params, state, None, echo=False))

  def warm_decode(state, prompt_len: int) -> None:
    """One step of the decode executable (consumes state).

    total_sampling_steps must stay a jax array like the one the prefill
    returns (a Python int is a different jit cache entry: a recompile).
    """
    total = state.total_sampling_steps
    _block(decode_fn(params, state.replace(
        total_sampling_steps=total * 0 + (prompt_len + 1))))

  def generated(state, prompt_len: int) -> int:
    total = int(state.total_sampling_steps)
    steps = min(int(state.decoding_step), total - 1)
    assert not np.asarray(state.done).any(), 'a row stopped early'
    return state.token_buffer.shape[0] * (steps - prompt_len + 1)

  def copy(state):
    return jax.tree.map(jnp.copy, state)

  prompts = spec['prompts']
  b, n = spec['batch'], spec['new_tokens']
  cache_sizes = lambda: decode_fn._cache_size()  # pylint: disable=protected-access
  result = {'versions': {'google-tunix': metadata.version('google-tunix'),
                         'jax': jax.__version__}}
  if spec['kind'] == 'long':
    w = spec['window']
    late_len = spec['prompt_len'] + n - w
    late_prompt = _prompts(hfc['vocab_size'], 1, late_len, spec['seed'],
                           'long_late')
    late_prompt[0, :prompts.shape[1]] = prompts[0]
    for name, rows, p in (('early', prompts, prompts.shape[1]),
                          ('late', late_prompt, late_len)):
      state = prefill(rows, w)
      if rows.shape[0] != b:  # Prefilled at batch 1: tile to the batch.
        tile = lambda x: jnp.repeat(x, b, axis=0)
        state = _block(state.replace(
            token_buffer=tile(state.token_buffer),
            positions=tile(state.positions), done=tile(state.done),
            cache=jax.tree.map(tile, state.cache)))
      warm_decode(copy(state), p)
      compiled = cache_sizes()
      gc.collect()
      t0 = time.perf_counter()
      state = _block(decode_fn(params, state))
      seconds = time.perf_counter() - t0
      # The prefill sampled each row's first token; the timed loop ran w
      # forward steps (the last step's token is dropped), as jaxreason's w.
      tokens = generated(state, p)
      result[name] = dict(start_position=p, seconds=seconds,
                          generated_tokens=tokens, expected_tokens=b * w,
                          tok_s=tokens / seconds,
                          compiled_during_timing=cache_sizes() - compiled)
      del state
    result['cache_size'] = spec['cache_size']
    return result
  p = prompts.shape[1]
  warm_decode(prefill(prompts, n), p)
  compiled = cache_sizes()
  runs = []
  for _ in range(spec['repeats']):
    gc.collect()
    t0 = time.perf_counter()
    state = prefill(prompts, n)
    t1 = time.perf_counter()
    state = _block(decode_fn(params, state))
    t2 = time.perf_counter()
    runs.append(dict(prefill_s=t1 - t0, decode_s=t2 - t1,
                     generated_tokens=generated(state, p)))
    del state
  result.update(_summary(runs, b * n))
  result.update(cache_size=spec['cache_size'],
                compiled_during_timing=cache_sizes() - compiled)
  return result


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
  del x, a, w
  read = max(rates['jax_sum'], rates['jax_sum_rows'], rates['numpy_sum'])
  return {'bytes': n * 4, 'rates_bytes_per_s': rates,
          'read_bytes_per_s': read}


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
  tmp = path + '.tmp'
  with open(tmp, 'w') as fp:
    json.dump(results, fp, indent=1, default=str)
  os.replace(tmp, path)


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
  results['machine']['load_average_end'] = os.getloadavg()
  _write_json(f.output, results)
  print(format_report(results))
  print(f'wrote {f.output}')
  return results


def main(argv: Sequence[str],
         fv: flags.FlagValues | None = None) -> dict[str, Any] | None:
  """Runs with fv, or with argv (program name first) parsed into new flags."""
  if fv is None:
    fv = flags.FlagValues()
    _define_flags(fv)
    try:
      argv = fv(list(argv))
    except flags.Error as e:
      raise app.UsageError(str(e)) from None
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if fv.worker:
    _worker_main(fv)
    return None
  return run(fv)


if __name__ == '__main__':
  _define_flags(flags.FLAGS)
  app.run(lambda argv: main(argv, flags.FLAGS) and None)
