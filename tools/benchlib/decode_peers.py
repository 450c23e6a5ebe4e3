"""bench_decode's peer frameworks: transformers and tunix in subprocesses.

bench_decode.py re-runs itself as `--worker=transformers|tunix` (its main
calls `_worker_main` here); `run_worker` writes the spec and prompts, starts
that subprocess and reads its JSON result. The prompt generator and the run
summary live here too, shared by the workers and the in-process jaxreason side.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

_TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(_TOOLS)
SCRIPT = os.path.join(_TOOLS, 'bench_decode.py')


def _prompts(vocab_size: int, rows: int, length: int, seed: int,
             salt: str) -> np.ndarray:
  """[rows, length] int32 ids in [1, vocab) (0 is tunix's pad id)."""
  digest = int(hashlib.sha1(salt.encode()).hexdigest()[:8], 16)
  rng = np.random.default_rng([seed, digest])
  return rng.integers(1, vocab_size, (rows, length), dtype=np.int32)


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
  """Runs bench_decode.py as `--worker=framework`; returns its JSON result."""
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
  cmd = [python, SCRIPT, f'--worker={framework}',
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
