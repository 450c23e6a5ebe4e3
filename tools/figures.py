"""The README's figures: how each is measured and how its table is drawn.

Each `Result` names the command that measures it (shown in `--list` and in
the provenance line under its table), the JSON it writes under benchmarks/,
and a renderer from that JSON to markdown. See tools/results.py.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import Any

from results_lib import (PY, REPO, RUNS, RUNS_REL, Result,
                         measure_tool_json, multi_tool, run)


def _quickstart_run(seed: int) -> dict[str, Any]:
  """One quickstart training (configs/sft/synthetic.py) with `seed`."""
  sys.path.insert(0, str(REPO))
  from jaxreason.file_modules import load_config  # pylint: disable=g-import-not-at-top
  from jaxreason.recipes import sft  # pylint: disable=g-import-not-at-top
  config = load_config(REPO / 'configs/sft/synthetic.py', '')
  config.seed = seed
  workdir = RUNS / f'quickstart_seed{seed}'
  start = time.time()
  result = sft.train(config, str(workdir))
  ev = result['eval']
  return {'seed': seed, 'workdir': str(workdir.relative_to(REPO)),
          'accuracy': ev['accuracy'], 'num_problems': ev['num_problems'],
          'final_train_loss': result['final_metrics'].get('loss'),
          'seconds': time.time() - start}


def measure_quickstart(r: Result) -> dict[str, Any]:
  del r
  return {'runs': [_quickstart_run(0)]}


def measure_quickstart_seeds(r: Result) -> dict[str, Any]:
  del r
  return {'runs': [_quickstart_run(s) for s in (0, 1, 2)]}


def render_quickstart(data: dict[str, Any]) -> str:
  q = data['result']['runs'][0]
  return (f"| `make quickstart` (seed {q['seed']}) | held-out greedy accuracy "
          f"| problems | wall time |\n|---|---|---|---|\n"
          f"| configs/sft/synthetic.py | **{q['accuracy']:.3f}** | "
          f"{q['num_problems']} | {q['seconds'] / 60:.1f} min |")


def render_quickstart_seeds(data: dict[str, Any]) -> str:
  import numpy as np  # pylint: disable=g-import-not-at-top
  runs = data['result']['runs']
  acc = np.array([q['accuracy'] for q in runs])
  lines = ['| training seed | held-out greedy accuracy | final train loss | '
           'wall time |', '|---|---|---|---|']
  for q in runs:
    lines.append(f"| {q['seed']} | {q['accuracy']:.3f} | "
                 f"{q['final_train_loss']:.4f} | {q['seconds'] / 60:.1f} min |")
  lines.append(f'| mean ± std (min-max) | {acc.mean():.3f} ± '
               f'{acc.std(ddof=1) if len(acc) > 1 else 0:.3f} '
               f'({acc.min():.3f}-{acc.max():.3f}) | | |')
  return '\n'.join(lines)


def measure_policy_opt(r: Result) -> dict[str, Any]:
  workdir = RUNS / 'policy_opt'
  run(r.command)
  with open(workdir / 'summary.json') as f:
    summary = json.load(f)
  figure = REPO / 'docs' / 'figures' / 'policy_opt_pass_at_1.png'
  shutil.copyfile(workdir / 'pass_at_1.png', figure)
  return summary


def measure_pipeline(r: Result) -> dict[str, Any]:
  """`make quickstart`'s pipeline, fresh, in runs/results/quickstart_pipeline."""
  workdir = RUNS / 'quickstart_pipeline'
  run(r.command)
  with open(workdir / 'report' / 'results.json') as f:
    data = json.load(f)
  for name in ('learning_curves', 'accuracy_vs_n', 'accuracy_by_difficulty'):
    shutil.copy(workdir / 'report' / f'{name}.png',
                REPO / 'docs' / 'figures' / f'quickstart_{name}.png')
  return data


def render_pipeline(data: dict[str, Any]) -> str:
  sys.path.insert(0, str(REPO))
  from jaxreason.recipes import quickstart_report  # pylint: disable=g-import-not-at-top
  d = data['result']
  return quickstart_report.markdown(d['table'], d['claims'], d['seconds'])


def render_policy_opt(data: dict[str, Any]) -> str:
  sys.path.insert(0, str(REPO / 'tools'))
  import demo_policy_opt  # pylint: disable=g-import-not-at-top
  return demo_policy_opt.markdown(data['result']['rows'])


def render_train(data: dict[str, Any]) -> str:
  """Throughput table; with `dense_gemms` in the JSON (bench_train's
  `--gemm_iters`) also the step's dense GEMMs timed alone on each side and
  the step time outside them."""
  lines = ['| shape | params | jaxreason tok/s | torch tok/s | ratio | '
           'jaxreason MFU | torch MFU | dense GEMMs alone: ratio | rest of '
           'step, s: jaxreason / torch |', '|---|---|---|---|---|---|---|---|---|']
  for d in data['result']:
    for row in d['results']:
      c, j = row['config'], row['jax']
      t = row.get('torch_sdpa') or next(
          v for k, v in row.items() if k.startswith('torch'))
      g, tokens = row.get('dense_gemms'), row['batch'] * row['seq_len']
      gemm = (f"{g['ratio_jax_over_torch']:.2f} | "
              f"{tokens / j['tokens_per_s'] - g['jax_s']:.1f} / "
              f"{tokens / t['tokens_per_s'] - g['torch_s']:.1f}"
              if g else '— | —')
      lines.append(
          f"| {row['shape']} (d {c['embed_dim']}, {c['num_layers']} layers, "
          f"vocab {c['vocab_size'] // 1000}k) | {row['num_params'] / 1e6:.1f}M "
          f"| {j['tokens_per_s']:.0f} | {t['tokens_per_s']:.0f} | "
          f"{j['tokens_per_s'] / t['tokens_per_s']:.2f} | {j['mfu']:.0%} | "
          f"{t['mfu']:.0%} | {gemm} |")
  return '\n'.join(lines)


def _tok_s(res: dict[str, Any]) -> float:
  return res['generated_tokens'] / (res['prefill_s'] + res['decode_s'])


def render_decode(data: dict[str, Any]) -> str:
  """Rates and shares recomputed from the raw timings in the JSON.

  The bandwidth bound uses the fastest weight read the same run measured
  (of jnp.sum, row sums, NumPy and a jnp matrix-vector product), not the
  slowest or a hand-picked one.
  """
  d = data['result']
  cases = d['cases']
  rates = d['bandwidth']['rates_bytes_per_s']
  best_name, best = max(rates.items(), key=lambda kv: kv[1])
  lines = ['| case | jaxreason | tunix | transformers | jaxreason / tunix |',
           '|---|---|---|---|---|']

  def row(label, case):
    res = cases[case]['results']
    vals = {k: _tok_s(v) for k, v in res.items()
            if k in ('jaxreason', 'tunix', 'transformers')}
    fmt = lambda k: f'{vals[k]:.1f} tok/s' if k in vals else '—'
    ratio = (f"{vals['jaxreason'] / vals['tunix']:.2f}x"
             if 'tunix' in vals and 'jaxreason' in vals else '—')
    lines.append(f"| {label} | {fmt('jaxreason')} | {fmt('tunix')} | "
                 f"{fmt('transformers')} | {ratio} |")
    return vals

  b1 = row('batch 1', 'batch1')
  bound = d['ratios']['batch1']['bandwidth_bound']
  per_token = bound['bytes_per_token']
  shares = {k: v * per_token / best for k, v in b1.items()}
  lines.append(
      f"| batch 1, share of the read-bandwidth bound ({best / 1e9:.1f} GB/s, "
      f"the fastest read measured: {best_name}; {per_token / 1e9:.2f} GB per "
      f"token) | {shares['jaxreason']:.0%} | {shares.get('tunix', 0):.0%} | "
      f"{shares.get('transformers', 0):.0%} | |")
  if 'bf16_batch1' in cases:
    row('batch 1, bfloat16 weights', 'bf16_batch1')
  for case, label in (('batch8', 'batch 8'), ('batch32', 'batch 32')):
    if case in cases:
      row(label, case)
  if 'shared_prefix' in cases:
    res = cases['shared_prefix']['results']
    secs = {k: v['prefill_s'] + v['decode_s'] for k, v in res.items()}
    p = cases['shared_prefix']['plan']
    lines.append(
        f"| shared prefix: {p['batch']} samples of one {p['prompt_len']}-token "
        f"prompt, total seconds (prompt encoded once / repeated per sample) | "
        f"{secs['jaxreason']:.1f} s / {secs['jaxreason_repeated']:.1f} s "
        f"(**{secs['jaxreason_repeated'] / secs['jaxreason']:.2f}x**) | "
        f"— / {secs['tunix']:.1f} s | — / {secs['transformers']:.1f} s | "
        f"repeated vs repeated: "
        f"{secs['tunix'] / secs['jaxreason_repeated']:.2f}x |")
  if 'long' in cases:
    res = cases['long']['results']
    p = cases['long']['plan']
    for window in ('early', 'late'):
      j, t = res['jaxreason'][window], res['tunix'][window]
      lines.append(
          f"| long: batch {p['batch']}, {p['cache_size']} cache, {window} "
          f"{p['window']} tokens (cache from {j['start_position']}) | "
          f"{j['tok_s']:.1f} tok/s | {t['tok_s']:.1f} | — | "
          f"{j['tok_s'] / t['tok_s']:.2f}x |")
  return '\n'.join(lines)


def render_grpo(data: dict[str, Any]) -> str:
  """Step time and its split, whatever parts (`*_s` of `mean`) the tool timed."""
  runs = data['result']
  parts = [k for k, v in runs[0]['mean'].items()
           if k.endswith('_s') and not k.endswith('tok_s') and
           isinstance(v, float) and k not in ('wall_s', 'other_s')]
  lines = ['| run | step s | ' + ' | '.join(k[:-2] for k in parts) +
           ' | rollout tok/s |', '|---|---|' + '---|' * len(parts) + '---|']
  for d in runs:
    m = d['mean']
    label = 'LoRA rank 8' if d['flags'].get('lora') else 'full fine-tuning'
    cells = [f'{m[k]:.2f} s ({m[k] / m["wall_s"]:.0%})' for k in parts]
    lines.append(f"| {label} | {m['wall_s']:.2f} | " + ' | '.join(cells) +
                 f" | {m.get('rollout_tok_s', 0):,.0f} |")
  return '\n'.join(lines)


def render_world_model(data: dict[str, Any]) -> str:
  r = data['result']['results']
  c = data['result']['config']
  return (f"| world-model params | train steps/s (frames/s) | imagination "
          f"calls/s (rollouts/s) | actor-critic updates/s |\n|---|---|---|---|"
          f"\n| {c['world_model_params'] / 1e3:.0f}k | "
          f"{r['train']['steps_per_s']:.1f} ({r['train']['frames_per_s']:,.0f}) "
          f"| {1 / r['imagine']['call_s']:.1f} "
          f"({r['imagine']['rollouts_per_s']:,.0f}) | "
          f"{r['actor_critic']['steps_per_s']:.1f} |")


def render_grader(data: dict[str, Any]) -> str:
  """tools/grader_agreement.py's sections, the informative figures first."""
  d = data['result']
  titles = (('informative', 'informative (can fail)'),
            ('negative_controls', 'negative control (shuffled golds: '
             'false matches)'),
            ('data_checks', 'data check (a property of the data)'),
            ('sanity_checks', 'sanity check (cannot fail by construction)'))
  lines = ['| kind | check | agree / n | rate |', '|---|---|---|---|']
  for section, title in titles:
    for name, v in d.get(section, {}).items():
      hits = v['agree'] if 'agree' in v else v['false_matches']
      lines.append(f"| {title} | {name} | {hits} / {v['n']} | "
                   f"{v['rate']:.2%} |")
  return '\n'.join(lines)


_TRAIN_CMDS = [
    [PY, 'tools/bench_train.py', '--shapes=bench-40m', '--batch=8',
     '--seq_len=512', '--steps=4', '--warmup=1', '--attention_block_size=128',
     '--rounds=2', '--output=benchmarks/bench_train_40m.json'],
    [PY, 'tools/bench_train.py', '--shapes=bench-124m', '--batch=8',
     '--seq_len=512', '--steps=3', '--warmup=1', '--attention_block_size=128',
     '--rounds=2', '--output=benchmarks/bench_train_124m.json'],
]
_GRPO_CMDS = [
    [PY, 'tools/bench_grpo.py', f'--policy={RUNS_REL}/quickstart_seed0',
     '--steps=5', '--output=benchmarks/grpo_cpu.json'],
    [PY, 'tools/bench_grpo.py', f'--policy={RUNS_REL}/quickstart_seed0',
     '--steps=5', '--lora', '--output=benchmarks/grpo_lora_cpu.json'],
]

# Verifiers and test-time search on the quickstart model ----------------------

_QS = f'{RUNS_REL}/quickstart_seed0'
def _prm_cmd(name: str, variant: str = '') -> list[str]:
  return [PY, 'experiments/prm.py',
          f'--config=configs/prm/synthetic.py{variant}',
          f'--workdir={RUNS_REL}/{name}', f'--config.init_workdir={_QS}']
_MATH_EVAL_CMDS = [
    [PY, 'experiments/math_eval.py', '--config=configs/math_eval/synthetic.py',
     f'--workdir={RUNS_REL}/math_eval_t{t}', f'--config.policy={_QS}',
     '--config.num_problems=512', f'--config.temperature={t}']
    for t in ('1.0', '0.6')]


def _search_cmd(name: str, *flags: str) -> list[str]:
  return [PY, 'experiments/search_eval.py',
          '--config=configs/search_eval/synthetic.py',
          f'--workdir={RUNS_REL}/{name}', f'--config.policy={_QS}', *flags]


def _needs(*workdirs: str) -> None:
  for w in workdirs:
    if not (REPO / w).exists():
      raise SystemExit(f'{w} is missing: rerun the figure that trains it '
                       'first (python tools/results.py --list)')


def _read(workdir: str, name: str) -> dict[str, Any]:
  with open(REPO / workdir / name) as f:
    return json.load(f)


def _measure_prm(name: str):
  def measure(r: Result) -> dict[str, Any]:
    _needs(_QS)
    run(r.command)
    workdir = f'{RUNS_REL}/{name}'
    return {'processbench': _read(workdir, 'processbench_synthetic.json'),
            'final_metrics': _read(workdir, 'result.json')['final_metrics']}
  return measure


def render_prm(data: dict[str, Any]) -> str:
  pb = data['result']['processbench']
  lines = [f"Threshold {pb['threshold']:.3f}, picked on `dev`; oracle F1 = "
           'the best threshold for that subset (an upper bound only).', '',
           '| subset | n err | n cor | acc err | acc cor | F1 | oracle F1 |',
           '|---|---|---|---|---|---|---|']
  for name, s in pb['subsets'].items():
    lines.append(f"| {name} | {s['num_erroneous']} | {s['num_correct']} | "
                 f"{100 * s['acc_erroneous']:.1f} | "
                 f"{100 * s['acc_correct']:.1f} | {100 * s['f1']:.1f} | "
                 f"{100 * s['oracle_f1']:.1f} |")
  return '\n'.join(lines)


def _measure_search(workdir_name: str, *needs: str):
  def measure(r: Result) -> dict[str, Any]:
    _needs(_QS, *needs)
    run(r.command)
    res = _read(f'{RUNS_REL}/{workdir_name}', 'results.json')
    shutil.copyfile(RUNS / workdir_name / 'scaling.png',
                    REPO / 'docs' / 'figures' / f'{workdir_name}.png')
    return {k: res[k] for k in ('num_problems', 'seconds', 'summary',
                                'compute_optimal')}
  return measure


def render_search(data: dict[str, Any]) -> str:
  sys.path.insert(0, str(REPO))
  from jaxreason.recipes import search_eval  # pylint: disable=g-import-not-at-top
  d = data['result']
  return (f"{d['num_problems']} held-out problems, accuracy (mean generated "
          'tokens per problem):\n\n' +
          search_eval.markdown(d['summary'], d['compute_optimal']).strip())


def _measure_math_eval(r: Result) -> dict[str, Any]:
  del r
  _needs(_QS)
  out = {}
  for command in _MATH_EVAL_CMDS:
    run(command)
    t = command[-1].split('=')[1]
    out[t] = _read(command[3].split('=')[1], 'results.json')['curve']
  return out


def render_math_eval(data: dict[str, Any]) -> str:
  temps = list(data['result'])
  head = ' | '.join(f'T={t} pass@n | maj@n (95% CI) | avg@n' for t in temps)
  lines = [f'| n | {head} | tokens / problem | FLOPs / problem |',
           '|---|' + '---|' * (3 * len(temps) + 2)]
  curves = [data['result'][t] for t in temps]
  for rows in zip(*curves):
    cells = []
    for c in rows:
      lo, hi = c['maj_ci95']
      cells += [f"{100 * c['pass']:.1f}",
                f"{100 * c['maj']:.1f} ({100 * lo:.1f}-{100 * hi:.1f})",
                f"{100 * c['avg']:.1f}"]
    lines.append(f"| {rows[0]['n']} | {' | '.join(cells)} | "
                 f"{rows[0]['tokens']:.0f} | {rows[0]['flops']:.1e} |")
  return '\n'.join(lines)


def render_compile(data: dict[str, Any]) -> str:
  d = data['result']
  lines = [f"Train step compiled for TPU {d['topology']} (fsdp over all "
           f"chips, bf16, remat full, batch {d['batch_size']} x "
           f"{d['seq_len']}) on this CPU host; seconds of lowering + XLA "
           'compile, and the compiling process\'s CPU seconds.', '',
           '| preset | layers | unrolled: wall | CPU | scanned: wall | CPU | '
           'unrolled / scanned (wall) |', '|---|---|---|---|---|---|---|']
  rows = d['rows']
  for u in (r for r in rows if not r['scan_layers']):
    sc = next(r for r in rows if r['scan_layers'] and
              r['preset'] == u['preset'] and
              r['num_layers'] == u['num_layers'])
    wu, ws = u['lower_s'] + u['compile_s'], sc['lower_s'] + sc['compile_s']
    lines.append(f"| {u['preset']} | {u['num_layers']} | {wu:.0f} s | "
                 f"{u['process_cpu_s']:.0f} s | {ws:.0f} s | "
                 f"{sc['process_cpu_s']:.0f} s | {wu / ws:.1f}x |")
  return '\n'.join(lines)


# Subgoal expert iteration over training seeds -------------------------------

_SUBGOAL_SEEDS = (0, 1, 2)


def _subgoal_cmd(seed: int) -> list[str]:
  return [PY, 'experiments/subgoal.py', '--config=configs/subgoal/synthetic.py',
          f'--workdir={RUNS_REL}/subgoal_seed{seed}', f'--config.seed={seed}']


def measure_subgoal_seeds(r: Result) -> dict[str, Any]:
  del r
  runs = []
  for seed in _SUBGOAL_SEEDS:
    run(_subgoal_cmd(seed))
    with open(RUNS / f'subgoal_seed{seed}' / 'subgoal_summary.json') as f:
      summary = json.load(f)
    runs.append({'seed': seed, 'arms': summary['arms'],
                 'sizes': summary['sizes'], 'z3_calls': summary['z3_calls']})
  return {'runs': runs}


def render_subgoal_seeds(data: dict[str, Any]) -> str:
  """Per round: each seed's held-out share, and the mean over seeds."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  runs = data['result']['runs']
  seeds = ', '.join(str(q['seed']) for q in runs)
  lines = [f'| round | checker calls | EI share (seeds {seeds}) | EI mean | '
           'EI any attempt so far (mean) | sampling only: any attempt so far '
           '(mean) |', '|---|---|---|---|---|---|']
  ei = [q['arms']['expert_iteration'] for q in runs]
  base = [q['arms']['sampling'] for q in runs]
  for k, row in enumerate(ei[0]):
    share = [e[k]['proved_share'] for e in ei]
    cum = np.mean([e[k]['cumulative_proved_share'] for e in ei])
    bcum = np.mean([b[k]['cumulative_proved_share'] for b in base])
    lines.append(f"| {row['round']} | {row['cumulative_checker_calls']:,} | "
                 f"{' / '.join(f'{v:.3f}' for v in share)} | "
                 f"{np.mean(share):.3f} | {cum:.3f} | {bcum:.3f} |")
  return '\n'.join(lines)


RESULTS = {r.name: r for r in [
    Result('quickstart', 'results_quickstart.json',
           [PY, 'experiments/sft.py', '--config=configs/sft/synthetic.py',
            '--workdir=runs/results/quickstart_seed0'],
           measure_quickstart, render_quickstart,
           workdirs=('quickstart_seed0',)),
    Result('quickstart_seeds', 'results_quickstart_seeds.json',
           [PY, 'experiments/sft.py', '--config=configs/sft/synthetic.py',
            '--config.seed=S', '--workdir=runs/results/quickstart_seedS',
            '# S = 0, 1, 2'],
           measure_quickstart_seeds, render_quickstart_seeds,
           workdirs=('quickstart_seed0', 'quickstart_seed1',
                     'quickstart_seed2')),
    Result('quickstart_pipeline', 'results_quickstart_pipeline.json',
           [PY, 'experiments/quickstart.py', '--config=configs/quickstart.py',
            f'--workdir={RUNS_REL}/quickstart_pipeline'],
           measure_pipeline, render_pipeline,
           workdirs=('quickstart_pipeline',)),
    Result('policy_opt', 'results_policy_opt.json',
           [PY, 'tools/demo_policy_opt.py',
            f'--policy={RUNS_REL}/quickstart_seed0', f'--workdir={RUNS_REL}/policy_opt',
            '--seeds=0,1,2', '--methods=grpo,grpo_lora,dpo,dpo_rpo'],
           measure_policy_opt, render_policy_opt, workdirs=('policy_opt',)),
    Result('grader', 'results_grader.json',
           [PY, 'tools/grader_agreement.py',
            '--output=benchmarks/grader_agreement.json'],
           measure_tool_json, render_grader,
           legacy=('grader_agreement.json',)),
    Result('bench_train', 'results_bench_train.json',
           _TRAIN_CMDS[0] + ['&&'] + _TRAIN_CMDS[1],
           multi_tool(['bench_train_40m.json', 'bench_train_124m.json'],
                       _TRAIN_CMDS), render_train,
           legacy=('bench_train_40m.json', 'bench_train_124m.json')),
    Result('bench_decode', 'results_bench_decode.json',
           [PY, 'tools/bench_decode.py', '--tunix_python=.venv-bench/bin/python',
            '--cases=batch1,bf16_batch1,batch8,batch32,shared_prefix,long',
            '--output=benchmarks/bench_decode_0.5b.json'],
           measure_tool_json, render_decode,
           legacy=('bench_decode_0.5b.json',)),
    Result('bench_grpo', 'results_bench_grpo.json',
           _GRPO_CMDS[0] + ['&&'] + _GRPO_CMDS[1],
           multi_tool(['grpo_cpu.json', 'grpo_lora_cpu.json'], _GRPO_CMDS),
           render_grpo, legacy=('grpo_cpu.json', 'grpo_lora_cpu.json')),
    Result('bench_world_model', 'results_bench_world_model.json',
           [PY, 'tools/bench_world_model.py', '--length=32', '--deter=128',
            '--stoch=16', '--hidden=128', '--mlp_hidden=128', '--embed=128',
            '--starts=256', '--steps=10',
            '--output=benchmarks/world_model_aime_config_cpu.json'],
           measure_tool_json, render_world_model,
           legacy=('world_model_aime_config_cpu.json',)),
    Result('math_eval', 'results_math_eval.json',
           _MATH_EVAL_CMDS[0] + ['&&'] + _MATH_EVAL_CMDS[1],
           _measure_math_eval, render_math_eval,
           workdirs=('math_eval_t1.0', 'math_eval_t0.6')),
    Result('prm', 'results_prm.json', _prm_cmd('prm'), _measure_prm('prm'),
           render_prm, workdirs=('prm',)),
    Result('prm_policy', 'results_prm_policy.json',
           _prm_cmd('prm_policy', ':policy'), _measure_prm('prm_policy'),
           render_prm, workdirs=('prm_policy',)),
    Result('search_oracle', 'results_search_oracle.json',
           _search_cmd('search_oracle'), _measure_search('search_oracle'),
           render_search, workdirs=('search_oracle',)),
    Result('search_prm', 'results_search_prm.json',
           _search_cmd('search_prm', '--config.verifier.kind=prm',
                       f'--config.verifier.path={RUNS_REL}/prm'),
           _measure_search('search_prm', f'{RUNS_REL}/prm'), render_search,
           workdirs=('search_prm',)),
    Result('search_prm_policy', 'results_search_prm_policy.json',
           _search_cmd('search_prm_policy', '--config.verifier.kind=prm',
                       f'--config.verifier.path={RUNS_REL}/prm_policy'),
           _measure_search('search_prm_policy', f'{RUNS_REL}/prm_policy'),
           render_search, workdirs=('search_prm_policy',)),
    Result('bench_compile', 'results_bench_compile.json',
           [PY, 'tools/bench_compile.py',
            '--presets=qwen2.5-1.5b,qwen2.5-7b', '--depths=4,full',
            '--output=benchmarks/bench_compile.json'],
           measure_tool_json, render_compile,
           legacy=('bench_compile.json',)),
    Result('subgoal_seeds', 'results_subgoal_seeds.json',
           _subgoal_cmd(0)[:3] + [f'--workdir={RUNS_REL}/subgoal_seedS',
                                  '--config.seed=S', '# S = 0, 1, 2'],
           measure_subgoal_seeds, render_subgoal_seeds,
           workdirs=tuple(f'subgoal_seed{s}' for s in _SUBGOAL_SEEDS)),
]}
