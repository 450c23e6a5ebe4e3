r"""One GRPO step's time split (rollout, batch, update) and rollout tok/s.

  # The synthetic settings (32 prompts x 8 samples, 64 new tokens, beta 0.04)
  # from the quickstart SFT model; then the same with LoRA adapters:
  JAX_PLATFORMS=cpu python tools/bench_grpo.py --policy=runs/quickstart \
      --steps=3 --output=benchmarks/grpo_cpu.json
  JAX_PLATFORMS=cpu python tools/bench_grpo.py --policy=runs/quickstart \
      --steps=3 --lora --output=benchmarks/grpo_lora_cpu.json
  # Quick check (a random tiny policy, seconds):
  JAX_PLATFORMS=cpu python tools/bench_grpo.py --prompts_per_step=2 \
      --group_size=4 --max_new_tokens=8 --steps=2 --output=/tmp/bench_grpo.json

The step is the recipe's own, on the config of `--config` (default
configs/grpo/synthetic.py; `:variant` and `--config.FIELD=VALUE` overrides
work as in experiments/; `--policy` a workdir / HF folder or '' for a random
model of the config's shape, `--lora` for adapters): `grpo.build` gives the
static pieces, the TrainState and the frozen reference, and each step calls
what `grpo.train` calls, in its order: `grpo.rollout` (with the recipe's
prompts and rng of step s, DAPO's dynamic sampling rounds included),
`grpo.make_batch` and mu x `train_step(state, batch, rng, frozen)`. The
only difference is the timing proxies passed in for the rollout's split.

Parts of a step, each timed on the host with everything it launched finished
(`block_until_ready` or a host copy):
  rollout    `policy.sampling_params` (LoRA: merge the adapters) and
             the rollouts: tokenize, prefill (G samples of each prompt
             share it), decode, host copies of the outputs, detokenize,
             reward. The split comes from timing proxies of the sampler,
             tokenizer, reward function and sampling_params put into the
             recipe's `GRPO` (`dataclasses.replace`; the sampler proxy
             waits for the prefill before the decode starts, which the
             library does not; the cost is one sync).
  batch      group advantages, the fixed-shape batch and its `device_put`
             onto the mesh (`grpo.make_batch`).
  update     num_iterations (mu) `train_step`s, waited for. With beta > 0
             this includes the reference forward: the reference log-probs
             are computed inside the jitted step from the frozen reference
             params (or, with LoRA, the base with adapters off), so the
             reference is no longer a part of its own; compare a --beta=0
             run for its cost.
  other      the step's wall time minus the parts (bookkeeping).
rollout tok/s = generated tokens / rollout seconds (the recipe's
`rollout_tokens_per_sec`, except that the recipe does not wait for the
previous step's update, so its rollout clock also runs while that finishes).
Its ratio to the tok/s of its own prefill + decode (same call, same moment)
is the host overhead without run-to-run noise.

The plain sampler, in the same run, before each step (not part of its wall
time): the same `Sampler`, params, prompts (P prompts, G samples each from one
prefill), max_new_tokens, sampling parameters and rng as that step's
rollout, timed `prefill` + `decode` only (no tokenizing, host copies,
detokenizing or reward). It generates the same tokens as the rollout (checked:
`same_tokens`), so rollout tok/s / plain tok/s is the overhead of the rollout
path. With `--plain_fixed_length` (default) also the sampler of
tools/bench_decode.py (`eos_ids=()`, no stop strings: every row generates
max_new_tokens) on the same prompts.

Warmup steps (`--warmup`) compile everything; their parts are reported with
the compilation seconds inside them (JAX's tracing, lowering and XLA compile
events, summed per part). Timed steps report compile seconds too (0 unless a
new prompt length bucket made the prefill recompile) and the sampler's trace
counts. The JSON (`--output`, rewritten after each step) holds the flags, the
resolved config, the machine, per-step parts and mean figures.

Other processes on the machine slow every part; absolute numbers move with
the load (recorded at start and end), ratios within a run much less.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import os
import statistics
import sys
import time
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from jaxreason.recipes import grpo
from jaxreason.sampling import Sampler, SamplingParams
from jaxreason.sampling import sampler as sampler_lib

# `python tools/bench_grpo.py` and tests loading this file by path alike.
_TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(_TOOLS)
sys.path.insert(0, _TOOLS)
# pylint: disable=g-import-not-at-top,wrong-import-position
from bench_decode import machine_info
from benchlib import cli
from benchlib.decode_report import _fmt
# pylint: enable=g-import-not-at-top,wrong-import-position

DEFAULT_CONFIG = os.path.join(REPO, 'configs', 'grpo', 'synthetic.py')
PARTS = ('rollout', 'batch', 'update')
ROLLOUT_PARTS = ('sampling_params', 'tokenize', 'prefill', 'decode',
                 'detokenize', 'reward')
CONTENTION_NOTE = (
    'Measured on a CPU that other processes may share: absolute seconds and '
    'tokens/s can be slowed by contention (see load averages); ratios within '
    'the run (plain sampler interleaved with the steps, shares of the step) '
    'are affected less.')


def _define_flags(fv: flags.FlagValues, argv: Sequence[str] | None = None
                  ) -> None:
  """The tool's flags on fv; argv carries `--config.FIELD=VALUE` overrides."""
  d = dict(flag_values=fv)
  config_flags.DEFINE_config_file(
      'config', DEFAULT_CONFIG, 'GRPO config file (with :variants).',
      lock_config=False, sys_argv=list(argv) if argv is not None else None,
      **d)
  flags.DEFINE_string('policy', None, 'A jaxreason workdir or HF folder; '
                      "'' for a random policy of the config's model; unset: "
                      "the config's policy.", **d)
  flags.DEFINE_integer('prompts_per_step', None,
                       "Prompts per step (default: the config's).", **d)
  flags.DEFINE_integer('group_size', None,
                       "Samples per prompt (default: the config's).", **d)
  flags.DEFINE_integer('max_new_tokens', None,
                       "Completion budget (default: the config's).", **d)
  flags.DEFINE_float('beta', 0.04, 'KL coefficient; > 0 times the reference '
                     'forward, 0 skips it.', **d)
  flags.DEFINE_bool('lora', False, 'LoRA adapters (rank --lora_rank) on the '
                    "policy, as the config's 'lora' variant.", **d)
  flags.DEFINE_integer('lora_rank', 8, 'Adapter rank with --lora.', **d)
  flags.DEFINE_integer('warmup', 1, 'Untimed (compiling) steps first.', **d)
  flags.DEFINE_integer('steps', 3, 'Timed steps.', **d)
  flags.DEFINE_bool('plain_fixed_length', True, 'Also time the sampler with '
                    'no EOS / stop strings (bench_decode).', **d)
  flags.DEFINE_string('output', os.path.join('benchmarks', 'grpo_cpu.json'),
                      'JSON results (rewritten after each step).', **d)


# Compilation clock ------------------------------------------------------------

_COMPILE_EVENTS = ('/jax/core/compile/jaxpr_trace_duration',
                   '/jax/core/compile/jaxpr_to_mlir_module_duration',
                   '/jax/core/compile/backend_compile_duration')


class _CompileClock:
  """Seconds JAX spent tracing, lowering and compiling (all threads)."""

  def __init__(self):
    self.seconds = 0.0
    self.events = 0
    self._registered = False

  def register(self) -> None:
    if not self._registered:  # Listeners cannot be removed: register once.
      jax.monitoring.register_event_duration_secs_listener(self._listen)
      self._registered = True

  def _listen(self, event: str, duration: float, **_) -> None:
    if event in _COMPILE_EVENTS:
      self.seconds += duration
      self.events += 1


_COMPILE = _CompileClock()


class _Clock:
  """Wall seconds and compile seconds per named part, summed over calls."""

  def __init__(self):
    self.seconds: dict[str, float] = {}
    self.compile: dict[str, float] = {}

  @contextlib.contextmanager
  def part(self, name: str):
    c0, t0 = _COMPILE.seconds, time.perf_counter()
    try:
      yield
    finally:
      self.seconds[name] = self.seconds.get(name, 0.0) + (
          time.perf_counter() - t0)
      c = _COMPILE.seconds - c0
      if c:
        self.compile[name] = self.compile.get(name, 0.0) + c


# Timing proxies passed to `rollout.sample_rollouts` ---------------------------


class _TimedSampler:
  """The Sampler, with prefill and decode waited for and timed."""

  def __init__(self, sampler: Sampler, clock: _Clock):
    self._sampler, self._clock = sampler, clock

  def __getattr__(self, name):
    return getattr(self._sampler, name)

  def prefill(self, *args, **kwargs):
    with self._clock.part('prefill'):
      return jax.block_until_ready(self._sampler.prefill(*args, **kwargs))

  def decode(self, *args, **kwargs):
    with self._clock.part('decode'):
      return jax.block_until_ready(self._sampler.decode(*args, **kwargs))


class _TimedTokenizer:
  """The tokenizer, with encode (prompts) and decode (completions) timed."""

  def __init__(self, tokenizer, clock: _Clock):
    self._tokenizer, self._clock = tokenizer, clock

  def __getattr__(self, name):
    return getattr(self._tokenizer, name)

  def encode(self, *args, **kwargs):
    with self._clock.part('tokenize'):
      return self._tokenizer.encode(*args, **kwargs)

  def decode(self, *args, **kwargs):
    with self._clock.part('detokenize'):
      return self._tokenizer.decode(*args, **kwargs)


def _timed_reward(reward_fn: Callable[..., Any], clock: _Clock):
  def fn(texts, records):
    with clock.part('reward'):
      return reward_fn(texts, records)
  return fn


# The GRPO pieces --------------------------------------------------------------


def resolve_config(f: flags.FlagValues) -> ml_collections.ConfigDict:
  """The --config with the tool's flags applied."""
  config = ml_collections.ConfigDict(f.config.to_dict())
  if f.policy is not None:
    config.policy = f.policy
  for name in ('prompts_per_step', 'group_size', 'max_new_tokens'):
    if getattr(f, name) is not None:
      config[name] = getattr(f, name)
  config.beta = f.beta
  if f.lora and not config.lora.rank:
    config.lora.rank = f.lora_rank
  if config.dynamic_sampling:
    logging.warning('dynamic_sampling: the plain sampler runs the first '
                    'sampling round only, so same_tokens is False when a '
                    'step takes more rounds')
  grpo.check_config(config)
  return config


def build(config: ml_collections.ConfigDict):
  """The recipe's own setup: (`grpo.GRPO`, TrainState, frozen reference)."""
  return grpo.build(config)


def _step_inputs(g: grpo.GRPO, step: int):
  """The records and rollout rng of the recipe's step (first round)."""
  return (grpo.step_records(g, step, 0),
          jax.random.fold_in(grpo.step_rng(g, step), 0))


def _timed_pieces(g: grpo.GRPO, split: _Clock) -> grpo.GRPO:
  """g with timing proxies for what `grpo.rollout` calls."""
  sampling_params = g.policy.sampling_params

  def timed_sampling_params(params):
    with split.part('sampling_params'):
      return jax.block_until_ready(sampling_params(params))

  return dataclasses.replace(
      g, sampler=_TimedSampler(g.sampler, split),
      tokenizer=_TimedTokenizer(g.tokenizer, split),
      reward_fn=_timed_reward(g.reward_fn, split),
      policy=dataclasses.replace(g.policy,
                                 sampling_params=timed_sampling_params))


def plain_sampler_run(sampler: Sampler, params, prompt_ids, config,
                      rng) -> tuple[dict[str, Any], list[list[int]]]:
  """prefill (G samples per prompt) + decode, waited for; no host work."""
  gc.collect()
  c0 = _COMPILE.seconds
  t0 = time.perf_counter()
  state = jax.block_until_ready(
      sampler.prefill(params, prompt_ids, num_samples=config.group_size))
  t1 = time.perf_counter()
  sp = SamplingParams.make(state.batch_size, temperature=config.temperature,
                           top_p=config.top_p)
  _, out = jax.block_until_ready(
      sampler.decode(params, state, sp, rng, config.max_new_tokens))
  t2 = time.perf_counter()
  tokens = int(np.asarray(out.lengths).sum())
  r = {'prefill_s': t1 - t0, 'decode_s': t2 - t1, 'total_s': t2 - t0,
       'generated_tokens': tokens, 'tok_s': tokens / (t2 - t0),
       'compile_s': _COMPILE.seconds - c0}
  return r, out.token_lists()


def grpo_step(g: grpo.GRPO, state, frozen, step: int,
              fixed_sampler: Sampler | None) -> tuple[dict[str, Any], Any]:
  """Plain sampler run(s), then one timed GRPO step; returns (row, state)."""
  config = g.config
  recs, rollout_rng = _step_inputs(g, step)
  out: dict[str, Any] = {'step': step}

  # The plain sampler on the step's inputs, with the params it will sample.
  params = jax.block_until_ready(g.policy.sampling_params(state.params))
  prompt_ids = [g.tokenizer.encode(r['prompt'],
                                   add_bos=g.tokenizer.bos_id is not None)
                for r in recs]
  out['plain'], plain_tokens = plain_sampler_run(
      g.sampler, params, prompt_ids, config, rollout_rng)
  if fixed_sampler is not None:
    out['plain_fixed_length'], _ = plain_sampler_run(
        fixed_sampler, params, prompt_ids, config, rollout_rng)
  del params
  gc.collect()

  # The step: the recipe's own calls, as `grpo.train` makes them.
  clock, split = _Clock(), _Clock()
  timed = _timed_pieces(g, split)
  c0, t0 = _COMPILE.seconds, time.perf_counter()
  with clock.part('rollout'):
    rollouts, _ = grpo.rollout(timed, state.params, step)
  with clock.part('batch'):
    batch = jax.block_until_ready(grpo.make_batch(g, rollouts))
  with clock.part('update'):
    for _ in range(config.num_iterations):
      state, metrics = g.train_step(state, batch, grpo.step_rng(g, step),
                                    frozen)
    state, metrics = jax.block_until_ready((state, metrics))
  wall = time.perf_counter() - t0

  parts = {f'{k}_s': clock.seconds.get(k, 0.0) for k in PARTS}
  parts['other_s'] = wall - sum(parts.values())
  rollout_split = {f'{k}_s': split.seconds.get(k, 0.0) for k in ROLLOUT_PARTS}
  rollout_split['outputs_and_other_s'] = parts['rollout_s'] - sum(
      rollout_split.values())
  tokens = sum(len(c) for c in rollouts.completion_ids)
  compile_by_part = dict(clock.compile)
  compile_by_part.update({f'rollout/{k}': v for k, v in split.compile.items()})
  out.update(
      wall_s=wall, **parts, rollout_split=rollout_split,
      generated_tokens=tokens, rollout_tok_s=tokens / parts['rollout_s'],
      sampler_tok_s=tokens / (rollout_split['prefill_s']
                              + rollout_split['decode_s']),
      compile_s=_COMPILE.seconds - c0, compile_by_part=compile_by_part,
      same_tokens=plain_tokens == rollouts.completion_ids,
      reward=float(rollouts.rewards.mean()),
      completion_length=tokens / len(rollouts.completion_ids),
      truncated_fraction=float(np.mean(
          np.asarray(rollouts.finish_reasons) == 'length')),
      loss=float(metrics['loss']), kl=float(metrics.get('kl', np.nan)))
  out['rollout_over_plain_tok_s'] = out['rollout_tok_s'] / out['plain'][
      'tok_s']
  out['rollout_over_own_sampler_calls_tok_s'] = (out['rollout_tok_s']
                                                 / out['sampler_tok_s'])
  if 'plain_fixed_length' in out:
    out['rollout_over_plain_fixed_length_tok_s'] = (
        out['rollout_tok_s'] / out['plain_fixed_length']['tok_s'])
  return out, state


# Summary, report --------------------------------------------------------------


def summarize(timed: list[dict[str, Any]]) -> dict[str, Any]:
  """Means over the timed steps; rates as total tokens / total seconds."""
  mean = lambda xs: statistics.fmean(xs) if xs else None
  keys = ['wall_s'] + [f'{k}_s' for k in PARTS] + ['other_s']
  m: dict[str, Any] = {k: mean([r[k] for r in timed]) for k in keys}
  m['rollout_split'] = {k: mean([r['rollout_split'][k] for r in timed])
                        for k in timed[0]['rollout_split']}
  tokens = sum(r['generated_tokens'] for r in timed)
  m['generated_tokens'] = tokens / len(timed)
  m['rollout_tok_s'] = tokens / sum(r['rollout_s'] for r in timed)
  m['step_tok_s'] = tokens / sum(r['wall_s'] for r in timed)
  m['sampler_tok_s'] = tokens / sum(r['rollout_split']['prefill_s']
                                    + r['rollout_split']['decode_s']
                                    for r in timed)
  m['rollout_over_own_sampler_calls_tok_s'] = (m['rollout_tok_s']
                                               / m['sampler_tok_s'])
  m['shares_of_wall'] = {k: m[k] / m['wall_s'] for k in keys[1:]}
  for name in ('plain', 'plain_fixed_length'):
    runs = [r[name] for r in timed if name in r]
    if not runs:
      continue
    t = sum(p['generated_tokens'] for p in runs)
    m[name] = {'prefill_s': mean([p['prefill_s'] for p in runs]),
               'decode_s': mean([p['decode_s'] for p in runs]),
               'total_s': mean([p['total_s'] for p in runs]),
               'generated_tokens': t / len(runs),
               'tok_s': t / sum(p['total_s'] for p in runs)}
    m[f'rollout_over_{name}_tok_s'] = m['rollout_tok_s'] / m[name]['tok_s']
    # Per-step ratios pair runs seconds apart: their median resists a burst
    # of load that hit one run.
    m[f'rollout_over_{name}_tok_s_median'] = statistics.median(
        r['rollout_tok_s'] / r[name]['tok_s'] for r in timed if name in r)
  m['compile_s_during_timing'] = sum(r['compile_s'] for r in timed)
  m['same_tokens_all_steps'] = all(r['same_tokens'] for r in timed)
  return m


def _row(label: str, r: dict[str, Any], warmup: bool = False) -> str:
  plain = r.get('plain', {}).get('tok_s')
  fixed = r.get('plain_fixed_length', {}).get('tok_s')
  ratio = None if warmup else r.get('rollout_over_plain_tok_s')
  return (f'| {label} | {r["wall_s"]:.2f} | {r["rollout_s"]:.2f} | '
          f'{r["batch_s"]:.3f} | '
          f'{r["update_s"]:.3f} | {r["other_s"]:.3f} | '
          f'{r["generated_tokens"]:.0f} | {r["rollout_tok_s"]:.0f} | '
          f'{_fmt(plain, ".0f")} | {_fmt(ratio)} '
          f'| {_fmt(fixed, ".0f")} |')


def format_report(results: dict[str, Any]) -> str:
  m, sh = results['machine'], results['shapes']
  lines = [
      f'# bench_grpo: {m["cpu"]}, {m["cpu_count"]} CPUs, jax {m["jax"]}, '
      f'load {" ".join(f"{x:.2f}" for x in m["load_average_start"])}',
      f'# policy {sh["policy"] or "(random)"} ({sh["num_params"] / 1e6:.2f}M '
      f'params, {sh["training"]}), {sh["prompts_per_step"]} prompts x '
      f'{sh["group_size"]} = {sh["rows"]} rows, {sh["max_new_tokens"]} new '
      f'tokens, width {sh["width"]}, beta {sh["beta"]}, mu '
      f'{sh["num_iterations"]}', '',
      '| step | wall s | rollout s | batch s | update s (with reference) | '
      'other s | tokens | rollout tok/s | plain tok/s | rollout/plain | '
      'fixed-length tok/s |', '|---|---|---|---|---|---|---|---|---|---|'
      '---|']
  for r in results['warmup']:
    lines.append(_row(f'warmup {r["step"]} (compile {r["compile_s"]:.1f}s)',
                      r, warmup=True))
  for r in results['timed']:
    lines.append(_row(str(r['step']), r))
  mean = results.get('mean')
  if mean:
    lines.append(_row('**mean**', mean))
    sp = mean['rollout_split']
    lines += [
        '', 'rollout split (mean s): ' + ', '.join(
            f'{k[:-2]} {v:.3f}' for k, v in sp.items()),
        'share of step wall: ' + ', '.join(
            f'{k[:-2]} {v:.0%}' for k, v in mean['shares_of_wall'].items()),
        f'rollout {mean["rollout_tok_s"]:.0f} tok/s, its own prefill + decode '
        f'{mean["sampler_tok_s"]:.0f} tok/s (ratio '
        f'{mean["rollout_over_own_sampler_calls_tok_s"]:.3f}), plain sampler '
        f'{mean["plain"]["tok_s"]:.0f} tok/s (same tokens: '
        f'{mean["same_tokens_all_steps"]}): rollout/plain '
        f'{mean["rollout_over_plain_tok_s"]:.2f} (median of steps '
        f'{mean["rollout_over_plain_tok_s_median"]:.2f})' + (
            f'; fixed-length sampler {mean["plain_fixed_length"]["tok_s"]:.0f}'
            f' tok/s ({mean["plain_fixed_length"]["generated_tokens"]:.0f} '
            f'tokens): rollout/fixed '
            f'{mean["rollout_over_plain_fixed_length_tok_s"]:.2f} (median '
            f'{mean["rollout_over_plain_fixed_length_tok_s_median"]:.2f})'
            if 'plain_fixed_length' in mean else ''),
        f'whole step {mean["step_tok_s"]:.0f} generated tok/s; compile '
        f'{results["compile"]["warmup_compile_s"]:.1f}s in warmup steps (+ '
        f'{results["compile"]["warmup_plain_sampler_compile_s"]:.1f}s in the '
        'plain sampler runs before them), '
        f'{mean["compile_s_during_timing"]:.2f}s during timed steps']
  return '\n'.join(lines)


_write_json = cli.write_json


def _progress(kind: str, r: dict[str, Any], done: int, total: int) -> None:
  print(f'# {kind} {done}/{total} (step {r["step"]}): {r["wall_s"]:.2f}s = '
        f'rollout {r["rollout_s"]:.2f} + batch {r["batch_s"]:.3f} + '
        f'update {r["update_s"]:.3f} + '
        f'other {r["other_s"]:.3f}; {r["generated_tokens"]} tokens, '
        f'{r["rollout_tok_s"]:.0f} tok/s vs plain '
        f'{r["plain"]["tok_s"]:.0f}; compile {r["compile_s"]:.1f}s',
        flush=True)


def run(f: flags.FlagValues) -> dict[str, Any]:
  if f.steps < 1 or f.warmup < 1:
    raise app.UsageError('--steps and --warmup must be >= 1 (the first step '
                         'compiles)')
  if 'xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', ''):
    logging.warning('XLA_FLAGS fakes several CPU devices; numbers may differ '
                    'from a plain run')
  _COMPILE.register()
  config = resolve_config(f)
  results: dict[str, Any] = {
      'tool': 'bench_grpo', 'note': CONTENTION_NOTE,
      'machine': machine_info(),
      'flags': {k: getattr(f, k) for k in (
          'policy', 'prompts_per_step', 'group_size', 'max_new_tokens',
          'beta', 'lora', 'lora_rank', 'warmup', 'steps',
          'plain_fixed_length', 'output')},
      'config': config.to_dict()}
  results['flags']['config'] = config_flags.get_config_filename(f['config'])
  results['machine']['load_average_start'] = os.getloadavg()
  print(f'# building the GRPO step (policy {config.policy or "random"}, '
        f'lora rank {config.lora.rank})', flush=True)
  t0 = time.perf_counter()
  c0 = _COMPILE.seconds
  g, state, frozen = build(config)
  fixed = (Sampler(g.model_cfg, cache_size=g.width, eos_ids=())
           if f.plain_fixed_length else None)
  results['setup'] = {'seconds': time.perf_counter() - t0,
                      'compile_s': _COMPILE.seconds - c0}
  results['shapes'] = {
      'policy': config.policy, 'num_params': g.model_cfg.num_params(),
      'model': dataclasses.asdict(g.model_cfg),
      'training': (f'LoRA rank {g.lora_cfg.rank}' if g.lora_cfg else
                   'full fine-tuning'),
      'prompts_per_step': config.prompts_per_step,
      'group_size': config.group_size, 'rows': g.num_rows,
      'max_new_tokens': config.max_new_tokens, 'beta': config.beta,
      'num_iterations': config.num_iterations,
      'longest_prompt': max(len(g.tokenizer.encode(r['prompt'])) + 1
                            for r in g.train_records),
      'width': g.width,
      'cache_size': g.sampler.cache_size}
  results.update(warmup=[], timed=[])
  total = f.warmup + f.steps
  traces = None
  for i in range(total):
    if i == f.warmup:
      traces = dict(sampler_lib.TRACE_COUNTS)
    r, state = grpo_step(g, state, frozen, i, fixed)
    kind = 'warmup' if i < f.warmup else 'timed'
    results[kind].append(r)
    _progress(kind, r, i + 1 if kind == 'warmup' else i + 1 - f.warmup,
              f.warmup if kind == 'warmup' else f.steps)
    if kind == 'timed':
      results['mean'] = summarize(results['timed'])
    results['compile'] = {
        'warmup_compile_s': sum(w['compile_s'] for w in results['warmup']),
        'warmup_plain_sampler_compile_s': sum(
            w[k]['compile_s'] for w in results['warmup']
            for k in ('plain', 'plain_fixed_length') if k in w),
        'warmup_compile_by_part': functools.reduce(
            lambda a, b: {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}},
            [w['compile_by_part'] for w in results['warmup']], {}),
        'warmup_wall_s': sum(w['wall_s'] for w in results['warmup']),
        'sampler_traced_during_timing': None if traces is None else {
            k: v - traces.get(k, 0)
            for k, v in sampler_lib.TRACE_COUNTS.items()}}
    _write_json(f.output, results)  # After every step: a stopped run keeps it.
  return cli.finish(f.output, results, _write_json, format_report)


def main(argv: Sequence[str],
         fv: flags.FlagValues | None = None) -> dict[str, Any]:
  """Runs with fv, or with argv (program name first) parsed into new flags."""
  fv = cli.parse(argv, fv, lambda v: _define_flags(v, argv))
  return run(fv)


if __name__ == '__main__':
  _define_flags(flags.FLAGS)
  app.run(lambda argv: main(argv, flags.FLAGS) and None)
