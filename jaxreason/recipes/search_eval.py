"""Test-time search on held-out problems: accuracy against N.

  result = search_eval.run(config, workdir)

Loads the policy (`config.policy`, or a random tiny model when empty), the
problems of `config.data.source` (`load_eval_set`: held-out synthetic
problems, or a benchmark's test split with its chat prompt and the
grader), builds the verifier named by
`config.verifier.kind` (`VERIFIERS`), and runs every method of
`config.methods` at every N of `config.ns`:

  greedy               temperature 0, N = 1 only, no verifier;
  best_of_n            N samples, the best-scoring one;
  weighted_best_of_n   the same samples, answers weighted by summed scores;
  majority             the same samples, the most frequent answer;
  beam_search          verifier-guided beam search, width `beam.width`;
  dvts                 N / `dvts.width` subtrees, greedy by verifier score.

Each method's step-score aggregation is `config.aggregation.<method>`.
Writes `results.json` (per method and N: accuracy, its 95% interval, the
mean budget per problem; the compute-optimal report; per-problem outcomes),
`results.md` and `scaling.png` (accuracy against N and against FLOPs per
problem, one line per method, compute-optimal marked) to the workdir.

Compute-optimal: the problems are split in half (dev, test); difficulty is
the pass@1 (`compute_optimal.difficulty='oracle'`) or the mean verifier
score ('predicted') of the first `compute_optimal.samples` best-of-N samples
at the largest N; see `jaxreason.search.compute_optimal`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable

from absl import logging
import jax
import ml_collections
import numpy as np

from jaxreason.data import sources, synthetic
from jaxreason.evals import math_eval
from jaxreason.evals import prompts as prompts_lib
from jaxreason.evals.pass_at_k import wilson_interval
from jaxreason.models.transformer import init_params
from jaxreason.sampling.policy import load_policy
from jaxreason.search import beam, best_of_n, compute_optimal, dvts
from jaxreason.search.common import ExtractFn, SearchResult
from jaxreason.search.generator import LMGenerator
from jaxreason.train import run_config
from jaxreason.train.plots import save_figure
from jaxreason.verifiers import OracleVerifier, Verifier
from jaxreason.verifiers.reward_model import load_verifier
from jaxreason.verifiers.thinkprm import ThinkPRM

RESULTS_FILE = 'results.json'
PLOT_FILE = 'scaling.png'
METHODS = ('greedy', 'majority', 'best_of_n', 'weighted_best_of_n',
           'beam_search', 'dvts')
_SAMPLED = {'best_of_n': 'best', 'weighted_best_of_n': 'weighted',
            'majority': 'majority'}

def _learned(cfg: Any, what: str) -> str:
  if not cfg.get('path'):
    raise ValueError(f'verifier.kind={cfg.kind!r} needs verifier.path: the '
                     f'workdir of a trained {what}')
  return cfg.path


def _prm(cfg: Any, problems: list) -> Verifier:
  del problems
  return load_verifier(_learned(cfg, 'PRM / ORM (experiments/prm.py)'),
                       batch_size=cfg.get('batch_size', 16))


def _thinkprm(cfg: Any, problems: list) -> Verifier:
  del problems
  return ThinkPRM.from_policy(
      _learned(cfg, 'ThinkPRM (experiments/thinkprm.py)'),
      num_chains=cfg.get('num_chains', 1),
      max_chain_tokens=cfg.get('max_chain_tokens', 256),
      cache_size=cfg.get('cache_size', 1024),
      batch_size=cfg.get('batch_size', 16))


def _oracle(cfg: Any, problems: list) -> Verifier:
  del cfg
  if not problems:
    raise ValueError("verifier.kind='oracle' checks the synthetic task's "
                     'steps exactly; a benchmark (data.source) has no step '
                     "checker: use 'none', 'prm' or 'thinkprm'")
  return OracleVerifier(problems)


# verifier.kind -> factory(verifier config, synthetic problems, empty for a
# benchmark) -> Verifier | None.
VERIFIERS: dict[str, Callable[[Any, list], Verifier | None]] = {
    'oracle': _oracle,
    'none': lambda cfg, problems: None,
    # A recipes.prm workdir: a step-level PRM, or an ORM for objective
    # 'orm' / 'ranking' (one score for the whole solution).
    'prm': _prm,
    'thinkprm': _thinkprm,
}


def make_verifier(cfg: Any, problems: list) -> Verifier | None:
  kind = cfg.get('kind', 'oracle')
  if kind not in VERIFIERS:
    raise ValueError(f'verifier.kind={kind!r}: expected one of '
                     f'{sorted(VERIFIERS)}')
  return VERIFIERS[kind](cfg, problems)


@dataclasses.dataclass(frozen=True)
class EvalSet:
  """The problems of a search run: prompts, gold answers and how to grade."""

  ids: list[str]
  questions: list[str]  # What a verifier sees.
  prompts: list[str]  # What the policy continues.
  golds: list[str]
  match: Callable[[str, str], bool]  # (answer, gold) -> correct.
  extract: ExtractFn  # Completion text -> its final answer.
  synthetic_problems: list[synthetic.Problem]  # Else [] (a benchmark).

  def correct(self, r: SearchResult, i: int) -> bool:
    return r.answer is not None and self.match(r.answer, self.golds[i])


def load_eval_set(config: ml_collections.ConfigDict, tokenizer) -> EvalSet:
  """`data.num_eval` problems of `data.source` (0 = all of a benchmark).

  'synthetic': held-out problems of `data.task` (`sources.synthetic_splits`:
  none is a training question of any recipe), the synthetic prompt, the
  last box, exact match. A benchmark name (`evals.benchmarks.BENCHMARKS`,
  read from `data.data_dir` or $JAXREASON_DATA): `config.prompt` (chat
  template or raw, `evals.prompts.build_prompt`) and `config.grading`
  (`math_eval.extractor` / `matcher`, by default the robust grader).
  """
  data = config.data
  source = data.get('source', 'synthetic')
  if source == 'synthetic':
    _, problems = sources.synthetic_splits(data.task, 0, data.num_eval,
                                           data.seed)
    return EvalSet([f'synthetic/{i}' for i in range(len(problems))],
                   [p.question for p in problems],
                   [synthetic.format_prompt(p) for p in problems],
                   [p.answer for p in problems],
                   lambda a, b: a.strip() == b.strip(),
                   synthetic.extract_boxed, list(problems))
  records = math_eval.load_records(ml_collections.ConfigDict(dict(
      benchmark=source, num_problems=data.num_eval,
      data_dir=data.get('data_dir', ''),
      skip_malformed=data.get('skip_malformed', False))))
  kept, texts = [], []
  for r in records:
    text = prompts_lib.build_prompt(r['problem'], tokenizer, config.prompt)
    try:
      prompts_lib.encode_prompt(text, tokenizer)
    except ValueError as e:
      if config.get('unencodable', 'error') != 'skip':
        raise ValueError(f'{source} problem {r["id"]}: {e} (set '
                         "--config.unencodable=skip to leave it out)") from e
      logging.warning('skipping %s problem %s: %s', source, r['id'], e)
      continue
    kept.append(r)
    texts.append(text)
  if not kept:
    raise ValueError(f'no {source} problem to search (all unencodable?)')
  grading = config.get('grading') or {}
  return EvalSet([r['id'] for r in kept], [r['problem'] for r in kept], texts,
                 [r['answer'] for r in kept],
                 math_eval.matcher(grading.get('match', 'grader')),
                 math_eval.extractor(grading.get('extract', 'robust')), [])


def load_model(config: ml_collections.ConfigDict):
  """(model config, params, tokenizer) of config.policy, or a random model."""
  if config.policy:
    return load_policy(config.policy)
  tokenizer = run_config.tokenizer_from_config(config.tokenizer)
  model_cfg = run_config.model_config_from(config.model, tokenizer.vocab_size)
  logging.warning('config.policy is empty: searching with a random model')
  return model_cfg, init_params(model_cfg, jax.random.key(config.seed)), (
      tokenizer)


def _run_batch(method: str, n: int, config, model, verifier, questions,
               prompts, seed: int, extract: ExtractFn
               ) -> dict[str, list[SearchResult]]:
  """{method name: results} of one method (best-of-N: all three rules)."""
  model_cfg, params, tokenizer = model
  longest = max(len(tokenizer.encode(p, add_bos=True)) for p in prompts)
  slack = config.max_step_tokens * (config.beam.lookahead + 1)
  gen = LMGenerator(model_cfg, params, tokenizer,
                    cache_size=longest + config.max_new_tokens + slack,
                    max_new_tokens=config.max_new_tokens,
                    max_step_tokens=config.max_step_tokens,
                    top_p=config.top_p, seed=seed)
  agg = config.aggregation
  t = config.temperature
  if method == 'greedy':
    return {'greedy': best_of_n.greedy(gen, questions, prompts,
                                       extract=extract)}
  if method == 'sampled':
    wanted = [m for m in _SAMPLED if m in config.methods]
    first = 'best_of_n' if 'best_of_n' in wanted else wanted[0]
    base = best_of_n.best_of_n(
        gen, None if wanted == ['majority'] else verifier, questions,
        prompts, n, select=_SAMPLED[first],
        aggregation=agg.get(first, 'last'), temperature=t, extract=extract)
    return {m: [best_of_n.reselect(r, _SAMPLED[m], agg.get(m, 'last'))
                for r in base] for m in wanted}
  if method == 'beam_search':
    return {method: beam.beam_search(
        gen, verifier, questions, prompts, n, width=config.beam.width,
        aggregation=agg.beam_search, lookahead=config.beam.lookahead,
        max_iterations=config.beam.max_iterations, temperature=t,
        dedupe=config.beam.dedupe, extract=extract)}
  if method == 'dvts':
    return {method: dvts.dvts(
        gen, verifier, questions, prompts, n, width=config.dvts.width,
        aggregation=agg.dvts, max_iterations=config.dvts.max_iterations,
        temperature=t, extract=extract)}
  raise ValueError(f'unknown method {method!r}: expected one of {METHODS}')


def run_methods(config, model, verifier, evals: EvalSet
                ) -> dict[str, dict[int, list[SearchResult]]]:
  """{method: {N: [one SearchResult per problem]}}."""
  unknown = set(config.methods) - set(METHODS)
  if unknown:
    raise ValueError(f'unknown methods {sorted(unknown)}: expected {METHODS}')
  questions, prompts = evals.questions, evals.prompts
  runs = (['greedy'] if 'greedy' in config.methods else []) + (
      ['sampled'] if set(_SAMPLED) & set(config.methods) else []) + [
          m for m in ('beam_search', 'dvts') if m in config.methods]
  out: dict[str, dict[int, list[SearchResult]]] = {}
  size = config.batch_problems
  for run_name in runs:
    for n in ([1] if run_name == 'greedy' else config.ns):
      start = time.time()
      for b in range(0, len(prompts), size):
        batch = _run_batch(run_name, n, config, model, verifier,
                           questions[b:b + size], prompts[b:b + size],
                           seed=(config.seed * 1000 + n) * 1000 + b,
                           extract=evals.extract)
        for m, results in batch.items():
          out.setdefault(m, {}).setdefault(n, []).extend(results)
      logging.info('%s N=%d: %.1fs', run_name, n, time.time() - start)
  return out


def summarize(runs, evals: EvalSet) -> dict[str, dict[str, dict[str, float]]]:
  """{method: {N: accuracy, ci95, mean budget per problem, finished}}."""
  out = {}
  for m, by_n in runs.items():
    out[m] = {}
    for n, results in sorted(by_n.items()):
      ok = [evals.correct(r, i) for i, r in enumerate(results)]
      row = {'accuracy': float(np.mean(ok)),
             'ci95': list(wilson_interval(float(np.sum(ok)), len(ok))),
             'answered': float(np.mean([r.answer is not None
                                        for r in results])),
             'finished_candidates': float(np.mean(
                 [sum(c.finished for c in r.candidates) for r in results]))}
      for key in ('policy_tokens', 'prompt_tokens', 'verifier_tokens',
                  'tokens', 'flops'):
        row[key] = float(np.mean([r.budget.as_dict()[key] for r in results]))
      out[m][str(n)] = row
  return out


def optimal_report(config, runs, evals: EvalSet) -> dict[str, Any] | None:
  """The compute-optimal report, or None without best-of-N samples."""
  co = config.compute_optimal
  num = len(evals.golds)
  if 'best_of_n' not in runs or num < 4:
    logging.warning('compute-optimal selection needs best_of_n and >= 4 '
                    'problems: skipped')
    return None
  samples = [r.candidates[:co.samples]
             for r in runs['best_of_n'][max(runs['best_of_n'])]]
  if co.difficulty == 'oracle':
    difficulty = compute_optimal.oracle_difficulty(
        [[c.finished and c.answer is not None and evals.match(c.answer, gold)
          for c in s] for s, gold in zip(samples, evals.golds)])
  elif co.difficulty == 'predicted':
    difficulty = compute_optimal.predicted_difficulty(
        [[c.score for c in s] for s in samples])
  else:
    raise ValueError(f"compute_optimal.difficulty={co.difficulty!r}: "
                     "expected 'oracle' or 'predicted'")
  half = num // 2
  parts = (range(0, half), range(half, num))
  correct = [{m: {n: [evals.correct(rs[i], i) for i in part]
                  for n, rs in by_n.items()} for m, by_n in runs.items()}
             for part in parts]
  cost = {m: {n: [rs[i].budget.flops for i in parts[1]]
              for n, rs in by_n.items()} for m, by_n in runs.items()}
  report = compute_optimal.compute_optimal(
      correct[0], difficulty[parts[0]], correct[1], difficulty[parts[1]],
      num_bins=co.num_bins, test_cost=cost)
  report.update(difficulty=co.difficulty, samples=co.samples,
                num_dev=half, num_test=num - half)
  return report


def plot_scaling(summary, report, path: str, title: str = '') -> str:
  """Accuracy against N and against FLOPs per problem, one line per method.

  Compute-optimal (its test-split accuracy at each N, at the mean FLOPs of
  the methods it chose) is the black dashed line with stars.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  markers = 'osD^vP<>'
  for k, (m, by_n) in enumerate(summary.items()):
    ns = sorted(by_n, key=int)
    acc = [by_n[n]['accuracy'] for n in ns]
    # Methods on the same samples can coincide: markers and dashes tell
    # them apart.
    style = dict(marker=markers[k % len(markers)], ms=5, lw=1.5, label=m,
                 ls=('-', '--', ':', '-.')[k % 4], alpha=0.85)
    axes[0].plot([int(n) for n in ns], acc, **style)
    axes[1].plot([by_n[n]['flops'] for n in ns], acc, **style)
  if report:
    ns = sorted(report['test_accuracy'], key=int)
    acc = [report['test_accuracy'][n]['compute_optimal'] for n in ns]
    style = dict(color='k', ls='--', marker='*', ms=11, lw=1,
                 label='compute-optimal (test half)')
    axes[0].plot([int(n) for n in ns], acc, **style)
    axes[1].plot([report['test_accuracy'][n]['compute_optimal_cost']
                  for n in ns], acc, **style)
  axes[0].set_xscale('log', base=2)
  axes[0].set_xlabel('N (samples / beams)')
  axes[1].set_xscale('log')
  axes[1].set_xlabel('FLOPs per problem (policy + verifier)')
  for ax in axes:
    ax.set_ylabel('accuracy')
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=7, loc='lower right')
  if title:
    fig.suptitle(title, fontsize=10)
  return save_figure(fig, path, dpi=110)


def markdown(summary, report) -> str:
  """Accuracy (and mean tokens) per method and N, and compute-optimal."""
  ns = sorted({n for by_n in summary.values() for n in by_n}, key=int)
  lines = ['| method | ' + ' | '.join(f'N={n}' for n in ns) + ' |',
           '|---|' + '---|' * len(ns)]
  for m, by_n in summary.items():
    cells = [f"{by_n[n]['accuracy']:.3f} ({by_n[n]['tokens']:.0f} tok)"
             if n in by_n else '' for n in ns]
    lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
  if report:
    lines += ['', f"Compute-optimal ({report['difficulty']} difficulty, "
              f"{report['num_bins']} bins; dev {report['num_dev']}, test "
              f"{report['num_test']} problems): test accuracy", '',
              '| N | compute-optimal | best fixed method | choice per bin '
              '(hardest first) |', '|---|---|---|---|']
    for n in sorted(report['test_accuracy'], key=int):
      row = dict(report['test_accuracy'][n])
      opt = row.pop('compute_optimal')
      row.pop('compute_optimal_cost', None)
      best = max(row, key=row.get)
      lines.append(f"| {n} | {opt:.3f} | {best} {row[best]:.3f} | "
                   f"{', '.join(report['choice'][n])} |")
  return '\n'.join(lines) + '\n'


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs every method at every N; writes results.json, .md and the plot."""
  os.makedirs(workdir, exist_ok=True)
  model = load_model(config)
  evals = load_eval_set(config, model[2])
  verifier = make_verifier(config.verifier, evals.synthetic_problems)
  start = time.time()
  runs = run_methods(config, model, verifier, evals)
  summary = summarize(runs, evals)
  report = optimal_report(config, runs, evals)
  result = {
      'config': config.to_dict(), 'num_problems': len(evals.golds),
      'source': config.data.get('source', 'synthetic'),
      'seconds': time.time() - start, 'summary': summary,
      'compute_optimal': report,
      'per_problem': {m: {str(n): [
          {'id': evals.ids[i], 'answer': r.answer,
           'correct': evals.correct(r, i), 'budget': r.budget.as_dict(),
           'info': r.info}
          for i, r in enumerate(rs)] for n, rs in by_n.items()}
                      for m, by_n in runs.items()},
  }
  if config.save_candidates:
    for m, by_n in runs.items():
      for n, rs in by_n.items():
        for row, r in zip(result['per_problem'][m][str(n)], rs):
          row['candidates'] = [c.as_dict() for c in r.candidates]
  with open(os.path.join(workdir, RESULTS_FILE), 'w') as f:
    json.dump(result, f, indent=1, default=str)
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(markdown(summary, report))
  result['plot'] = plot_scaling(
      summary, report, os.path.join(workdir, PLOT_FILE),
      f"{len(evals.golds)} problems of {result['source']}, verifier: "
      f"{config.verifier.kind}")
  return result
