"""SubgoalXL-style expert iteration on the synthetic proving domain.

  from jaxreason.recipes import subgoal
  from jaxreason.file_modules import load_config
  result = subgoal.train(load_config('configs/subgoal/synthetic.py', ''),
                         'runs/subgoal')

Reads top to bottom:
  1. data: seed problems with known proofs, an unlabelled pool (informal
     statements only) and held-out problems (formal statements, as in
     miniF2F), all from `prover.synthetic`;
  2. one character-level Transformer trained by SFT on the seed chains in the
     three generator formats (`prover.generators`: formaliser, subgoal
     generator, proof generator share the model);
  3. round 0: the held-out proved share of the seed model;
  4. arm 'expert_iteration', rounds 1..R: k chains per pool problem (from
     its formal statement; from the formaliser's samples of its informal one
     with `pool_from_informal`, see docs/subgoal.md for why that is off), scored
     by the proof generator's length-normalised log-likelihood, rejection
     sampling keeps `num_keep` (beta 0.5), the checker verifies them, the
     verified chains join the seed data and training continues on the
     merged set; then the held-out proved share again;
  5. arm 'sampling' (the baseline): the seed model, never retrained, spends
     each round's checker calls (the expert-iteration arm's: `num_keep` per
     pool problem + the evaluation) on more attempts at the held-out
     problems; its share is the fraction proved by any attempt so far.

A checker call is one candidate proof submitted to verification (parsed or
not; verdicts of identical texts are cached, `z3_calls` counts the real
ones). Writes workdir/subgoal_summary.json and workdir/rounds.png (and a
copy in `config.summary_dir` when set). A killed run started again in the
same workdir resumes after its last finished round (see `train`).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxreason import prover
from jaxreason.data import pipeline
from jaxreason.models.transformer import Transformer
from jaxreason.prover import expert_iteration as ei
from jaxreason.prover import generators as gen_lib
from jaxreason.prover import synthetic
from jaxreason.recipes import sft
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train import optim, run_config, run_context
from jaxreason.train.state import abstract_train_state
from jaxreason.train.plots import save_figure
from jaxreason.train.step import batch_sharding, make_train_step

SUMMARY_FILE = 'subgoal_summary.json'
PLOT_FILE = 'rounds.png'
ARMS = ('expert_iteration', 'sampling')


class CachedChecker:
  """check_fn with verdicts cached by (variables, hypotheses, goal, steps)."""

  def __init__(self, check_fn: Callable[..., Any]):
    self.check_fn = check_fn
    self.cache: dict[Any, Any] = {}
    self.calls = 0  # Real checker invocations.

  def __call__(self, variables, hyps, goal, steps, *, timeout_s):
    key = (tuple(sorted(variables.items())), tuple(hyps), goal, tuple(steps))
    if key not in self.cache:
      self.calls += 1
      self.cache[key] = self.check_fn(variables, hyps, goal, steps,
                                      timeout_s=timeout_s)
    return self.cache[key]


def make_problems(data: ml_collections.ConfigDict):
  """(seed, pool, held_out) problem lists, disjoint."""
  kw = dict(templates=tuple(data.templates), max_coef=data.max_coef)
  seed = synthetic.generate_problems(data.num_seed, seed=data.seed, **kw)
  pool = synthetic.generate_problems(data.num_pool, seed=data.seed + 1,
                                     exclude=seed, **kw)
  held = synthetic.generate_problems(data.num_eval, seed=data.seed + 2,
                                     exclude=seed + pool, **kw)
  return seed, pool, held


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the seed SFT, the rounds of each arm; returns the per-round summary.

  Resumes: the state is checkpointed after round 0 and after each expert-
  iteration round, with the loop's progress (rows, merged training pairs,
  numpy rng) as the checkpoint's `extra`; a killed run started again in the
  same workdir continues after the last finished round (a round cut short
  is redone from its start, its metrics rows logged again). The sampling
  arm, which never trains, is recomputed from the seed checkpoint.
  """
  arms = tuple(config.arms)
  if not arms or set(arms) - set(ARMS):
    raise ValueError(f'config.arms={arms}: expected some of {ARMS}')
  if not hasattr(prover, 'check_proof'):
    raise ImportError('jaxreason.prover.check_proof is missing: the checker '
                      '(branch prover-check) must be merged first')
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.rules_from_config(config.get('sharding_rules'))
  tokenizer = run_config.tokenizer_from_config(config.tokenizer)
  run_config.save_run_config(workdir, config, tokenizer)
  seed_problems, pool, held = make_problems(config.data)
  seed_pairs = [(p.informal, gen_lib.known_chain(p)) for p in seed_problems]
  logging.info('%d seed, %d pool, %d held-out problems', len(seed_problems),
               len(pool), len(held))

  # Model, state and the SFT step (recipes/sft.py's loss).
  model_cfg = run_config.model_config_from(config.model, tokenizer.vocab_size)
  model = Transformer(model_cfg)
  logging.info('Model: %.2fM parameters', model_cfg.num_params() / 1e6)
  rng = jax.random.PRNGKey(config.seed)
  dummy = jnp.zeros((1, 1), jnp.int32)
  abstract, shardings, init = abstract_train_state(
      lambda k: model.init(k, dummy)['params'],
      lambda mask: optim.make_optimizer(config.optim, mask)[0], rng, mesh,
      rules)
  ei_rounds = config.rounds if 'expert_iteration' in arms else 0
  total = config.seed_steps + ei_rounds * config.round_steps
  # Checkpoints only at round ends (saved below, with the loop's progress);
  # all kept: the sampling arm needs the seed model's.
  run = run_context.RunContext(workdir, total, save_every=total + 1,
                               log_every=config.log_every, max_to_keep=None)
  state, start = run.restore_or_init(
      abstract, lambda: jax.jit(init, out_shardings=shardings)(rng))
  progress = _check_progress(run.extra, start, config, workdir)
  train_step = make_train_step(sft.make_loss_fn(model), shardings, mesh,
                               schedule=optim.make_schedule(config.optim),
                               rules=rules)
  batch_sh = batch_sharding(mesh, rules)
  step_rng = jax.random.PRNGKey(config.seed + 1)
  last_metrics: dict[str, Any] = {}

  def sft_phase(state, pairs, start: int, steps: int, data_seed: int):
    nonlocal last_metrics
    records = gen_lib.sft_records(pairs)
    it = iter(pipeline.sft_dataset(records, tokenizer, seq_len=config.seq_len,
                                   batch_size=config.batch_size,
                                   seed=data_seed, pack=True))
    for step in range(start, start + steps):
      batch = pipeline.global_batch(next(it), batch_sh)
      state, last_metrics = train_step(state, batch, step_rng)
      if run.after_step(step + 1, state, last_metrics, save=False,
                        tokens=config.batch_size * config.seq_len):
        raise _Stopped(step + 1)
    return state

  def save(step: int, state, **progress) -> None:
    run.ckpt.save(step, state, force=True,
                  extra={'kind': PROGRESS_KIND, 'step': step, **progress})

  gens = gen_lib.Generators(model_cfg, tokenizer,
                            max_new_tokens=config.max_new_tokens,
                            max_prompt_len=config.max_prompt_len)
  checker = CachedChecker(prover.check_proof)
  temp, timeout = config.temperature, config.checker_timeout_s
  held_informal = [p.informal for p in held]
  held_formal = [p.formal for p in held]

  def attempts(params, n: int, key) -> np.ndarray:
    """[P, n] proved flags of n fresh attempts per held-out problem."""
    chains = gens.sample_chains(params, held_informal, n=n, rng=key,
                                temperature=temp, formal=held_formal)
    return np.asarray([[ei.verify(c, checker, timeout_s=timeout).proved
                        for c in row] for row in chains], bool)

  def formaliser_exact(params) -> float:
    """Greedy formaliser exact match on the held-out statements."""
    outs = gens.generate(params, [gen_lib.prompt(gen_lib.FORMALISE,
                                                 informal=t)
                                  for t in held_informal],
                         n=1, rng=0, temperature=0.0)
    logging.info('formaliser: %r for %r', outs[0][0], held_formal[0])
    return float(np.mean([o[0].strip() == f
                          for o, f in zip(outs, held_formal)]))

  key = jax.random.key(config.seed + 2)
  n_eval = config.eval_attempts
  try:
    # Seed SFT and round 0 (shared by both arms).
    if progress is None:
      state = sft_phase(state, seed_pairs, 0, config.seed_steps, config.seed)
      first = attempts(jax.device_get(state.params), n_eval,
                       jax.random.fold_in(key, 0))
      row0 = {'round': 0, 'proved_share': float(first.any(1).mean()),
              'cumulative_proved_share': float(first.any(1).mean()),
              'attempt_success_rate': float(first.mean()),
              'checker_calls': first.size,
              'cumulative_checker_calls': first.size,
              'formalise_exact': formaliser_exact(
                  jax.device_get(state.params))}
      progress = {'round': 0, 'rows': [row0],
                  'first_proved': first.any(1).tolist(),
                  'pairs': _pairs_to_json(seed_pairs),
                  'np_rng': np.random.default_rng(
                      config.seed).bit_generator.state}
      save(config.seed_steps, state, **progress)
      logging.info('round 0: held-out proved share %.3f',
                   row0['proved_share'])
    row0 = progress['rows'][0]
    first_proved = np.asarray(progress['first_proved'], bool)
    summary: dict[str, Any] = {'arms': {}, 'sizes': {
        'seed': len(seed_problems), 'pool': len(pool), 'held_out': len(held),
        'k': config.k, 'num_keep': config.num_keep, 'beta': config.beta,
        'eval_attempts': n_eval, 'rounds': config.rounds}}
    per_round_calls = (len(pool) * min(config.num_keep, config.k)
                       + row0['checker_calls'])

    if 'expert_iteration' in arms:
      rows = progress['rows']
      pairs = _pairs_from_json(progress['pairs'])
      cum = rows[-1]['cumulative_checker_calls']
      union = np.asarray(first_proved)
      for row in rows[1:]:
        union = union | np.asarray(row['proved'], bool)
      np_rng = np.random.default_rng()
      np_rng.bit_generator.state = progress['np_rng']
      params = jax.device_get(state.params)
      step = config.seed_steps + progress['round'] * config.round_steps
      for r in range(progress['round'] + 1, config.rounds + 1):
        rkey = jax.random.fold_in(key, 1000 + r)
        chains = gens.sample_chains(
            params, [p.informal for p in pool], n=config.k, rng=rkey,
            temperature=temp,
            formal=None if config.pool_from_informal else [p.formal
                                                           for p in pool])
        rewards = gens.partner_scores(params, chains)
        res = ei.select_and_verify(
            [p.informal for p in pool], chains, rewards,
            num_keep=config.num_keep, beta=config.beta, rng=np_rng,
            check_fn=checker, timeout_s=timeout)
        pairs = ei.merge_pairs(pairs, res.verified)
        state = sft_phase(state, pairs, step, config.round_steps,
                          config.seed + r)
        step += config.round_steps
        params = jax.device_get(state.params)
        got = attempts(params, n_eval, jax.random.fold_in(key, r))
        cum += res.kept + got.size
        union = union | got.any(1)
        rows.append({'round': r, 'proved_share': float(got.any(1).mean()),
                     'cumulative_proved_share': float(union.mean()),
                     'attempt_success_rate': float(got.mean()),
                     'checker_calls': res.kept + got.size,
                     'cumulative_checker_calls': cum,
                     'pool_proved_share': res.proved_share,
                     'verified_chains': len(res.verified),
                     'train_pairs': len(pairs),
                     'formalise_exact': formaliser_exact(params),
                     'proved': got.any(1).tolist()})
        logging.info('expert iteration round %d: %s', r,
                     {k: v for k, v in rows[-1].items() if k != 'proved'})
        save(step, state, round=r, rows=rows,
             first_proved=progress['first_proved'],
             pairs=_pairs_to_json(pairs), np_rng=np_rng.bit_generator.state)
      summary['arms']['expert_iteration'] = [
          {k: v for k, v in row.items() if k != 'proved'} for row in rows]
      # The baseline spends what this arm spent, round by round.
      per_round_calls = [row['checker_calls'] for row in rows[1:]]
    else:
      per_round_calls = [per_round_calls] * config.rounds
    if 'sampling' in arms:
      if ei_rounds:  # The seed model, saved after round 0.
        run.ckpt.wait()
        state = run.ckpt.restore(abstract, step=config.seed_steps)[0]
      seed_params = jax.device_get(state.params)
      rows, proved = [dict(row0)], first_proved
      cum = row0['cumulative_checker_calls']
      for r, calls in enumerate(per_round_calls, start=1):
        n = max(calls // len(held), 1)
        got = attempts(seed_params, n, jax.random.fold_in(key, 2000 + r))
        proved = proved | got.any(1)
        cum += got.size
        rows.append({'round': r,
                     # The first eval_attempts attempts: the seed model's
                     # share under the expert-iteration arm's evaluation.
                     'proved_share': float(got[:, :n_eval].any(1).mean()),
                     'cumulative_proved_share': float(proved.mean()),
                     'attempt_success_rate': float(got.mean()),
                     'checker_calls': got.size,
                     'cumulative_checker_calls': cum,
                     'attempts_per_problem': n})
        logging.info('sampling baseline round %d: %s', r, rows[-1])
      summary['arms']['sampling'] = rows
  except _Stopped as stop:
    logging.warning('Stopped at step %d (SIGTERM): start again with the same '
                    '--workdir to resume after the last finished round',
                    stop.step)
    return {'stopped_at_step': stop.step}
  finally:  # Also on Ctrl-C: the checkpoint being written is finished.
    run.close()

  summary['resumed_from_step'] = start or None
  summary['z3_calls'] = checker.calls
  summary['checker'] = (f'{getattr(checker.check_fn, "__module__", "?")}.'
                        f'{getattr(checker.check_fn, "__name__", "?")}')
  summary['final_metrics'] = {k: float(v) for k, v in
                              jax.device_get(last_metrics).items()}
  write_summary(summary, workdir, config.get('summary_dir', ''))
  return summary


PROGRESS_KIND = 'subgoal_expert_iteration'


class _Stopped(Exception):
  """SIGTERM during an SFT phase: the run stops without saving mid-round."""

  def __init__(self, step: int):
    super().__init__(step)
    self.step = step


def _pairs_to_json(pairs) -> list[list[str]]:
  return [[informal, c.formal, c.sketch, c.proof] for informal, c in pairs]


def _pairs_from_json(rows) -> list[tuple[str, gen_lib.Chain]]:
  return [(informal, gen_lib.Chain(formal, sketch, proof))
          for informal, formal, sketch, proof in rows]


def _check_progress(extra: dict | None, step: int,
                    config: ml_collections.ConfigDict,
                    workdir: str) -> dict | None:
  """The saved loop progress of a resumed run (None on a fresh start)."""
  if step == 0:
    return None
  where = os.path.join(workdir, 'checkpoints', str(step))
  if not extra or extra.get('kind') != PROGRESS_KIND:
    raise ValueError(f'{where}: the checkpoint has no expert-iteration '
                     'progress (written by another recipe?); use a fresh '
                     '--workdir')
  expected = config.seed_steps + extra['round'] * config.round_steps
  if extra['step'] != step or step != expected:
    raise ValueError(
        f'{where}: saved after round {extra["round"]} at step {step}, but '
        f'config.seed_steps={config.seed_steps} and config.round_steps='
        f'{config.round_steps} put that round\'s end at step {expected}: '
        'resume with the config the run started with')
  if extra['round'] > config.rounds:
    raise ValueError(f'{where}: saved after round {extra["round"]} > '
                     f'config.rounds={config.rounds}')
  logging.info('Resuming expert iteration after round %d (step %d)',
               extra['round'], step)
  return extra


def write_summary(summary: dict[str, Any], workdir: str,
                  summary_dir: str = '') -> None:
  """workdir/subgoal_summary.json + rounds.png (and copies in summary_dir)."""
  path = os.path.join(workdir, SUMMARY_FILE)
  with open(path, 'w') as f:
    json.dump(summary, f, indent=1)
  plot = plot_rounds(summary, os.path.join(workdir, PLOT_FILE))
  if summary_dir:
    os.makedirs(summary_dir, exist_ok=True)
    shutil.copy(path, os.path.join(summary_dir, 'summary.json'))
    shutil.copy(plot, os.path.join(summary_dir, PLOT_FILE))


def plot_rounds(summary: dict[str, Any], path: str) -> str:
  """Left: each round's held-out proved share (fresh attempts) per arm.

  Right: the share proved by any attempt so far against cumulative checker
  calls (the sampling arm spends all of its calls on the held-out problems).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  labels = {'expert_iteration': 'expert iteration (retrained)',
            'sampling': 'sampling only (seed model)'}
  for arm, rows in summary['arms'].items():
    axes[0].plot([r['round'] for r in rows],
                 [r['proved_share'] for r in rows], marker='o',
                 label=labels[arm])
    xs = [r['cumulative_checker_calls'] for r in rows]
    ys = [r['cumulative_proved_share'] for r in rows]
    axes[1].plot(xs, ys, marker='o', label=labels[arm])
    for r, x, y in zip(rows, xs, ys):
      axes[1].annotate(str(r['round']), (x, y), textcoords='offset points',
                       xytext=(3, 4), fontsize=7)
  k = summary['sizes']['eval_attempts']
  axes[0].set_xlabel('round')
  axes[0].set_ylabel(f'held-out proved share ({k} attempt(s) each)')
  axes[1].set_xlabel('cumulative checker calls')
  axes[1].set_ylabel('held-out share proved by any attempt so far')
  for ax in axes:
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return save_figure(fig, path, dpi=110)
