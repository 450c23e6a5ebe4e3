"""Reward models on step labels: a PRM (per-step BCE), an ORM, a ranking RM.

  from jaxreason.recipes import prm
  from configs.prm import synthetic
  result = prm.train(synthetic.get_config('debug'), '/tmp/prm')
  verifier = jaxreason.verifiers.load_prm('/tmp/prm')

Reads top to bottom: mesh -> policy / tokenizer -> step-labelled data
(encoded once) -> reward model and sharded state (resumed if the workdir has
a checkpoint) -> jitted step -> loop -> ProcessBench-format evaluation on
held-out synthetic questions.

Model (`config.head`): 'token' reads p('+') / (p('+') + p('-')) from the
LM's next-token logits at each step's separator (no new parameters), or
'scalar', a Dense(1) on the last hidden state (`models.heads`). The LM
starts from `config.init_workdir` (a jaxreason SFT workdir, e.g. the
quickstart policy) or, empty, from a random `config.model`.

Objective (`config.objective`): 'prm' (`step_bce_loss` at every step's
separator; `first_error_only` drops the steps after the first wrong one),
'orm' (`outcome_loss` at the last token, label = final answer right) or
'ranking' (Qwen2.5-Math `ranking_loss` within each question's group).

Data: `data.num_train` held-in synthetic questions with `data.group_size`
solutions each. `data.solutions='flawed'`: the reference one, at least one
with an injected error of known first wrong step, the rest flawed with
`data.flawed_prob`. 'policy': samples of the initial policy
(`data.sample`), labelled by the task's exact step checker, as PRM800K
labels a policy's samples, so the PRM sees the errors it must catch at test
time;
`data.label_fraction` keeps that share of the questions (at least one), for
label-efficiency comparisons. `rollout.n > 0` replaces the gold labels by
Math-Shepherd rollout labels from the initial policy
(`verifiers.rollout_labels`, 'hard' or 'soft'). A batch is
`groups_per_step` whole groups, drawn from seeded per-epoch permutations of
the groups: a function of (seed, step), so resuming needs only the state.
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxreason.data import pipeline, sources, step_labels, synthetic
from jaxreason.evals import processbench
from jaxreason.losses import reward as reward_losses
from jaxreason.models.heads import init_reward_params
from jaxreason.rewards import task_rewards
from jaxreason.sampling.policy import load_policy
from jaxreason.sampling.sampler import Sampler, bucket
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train import optim, plots, run_config, run_context
from jaxreason.train.state import abstract_train_state
from jaxreason.train.step import batch_sharding, make_train_step
from jaxreason.verifiers.rollout_labels import rollout_labels
from jaxreason.verifiers.rollout_labels import with_rollout_labels
from jaxreason.verifiers.prm import DiscriminativePRM, make_reward_model
from jaxreason.verifiers.reward_model import OutcomeRM

OBJECTIVES = ('prm', 'orm', 'ranking')


def check_config(config: ml_collections.ConfigDict) -> None:
  if config.objective not in OBJECTIVES:
    raise ValueError(f'objective={config.objective!r}: expected one of '
                     f'{OBJECTIVES}')
  if not 0.0 < config.data.label_fraction <= 1.0:
    raise ValueError(f'data.label_fraction={config.data.label_fraction} '
                     'must be in (0, 1]')
  if config.data.solutions not in ('flawed', 'policy'):
    raise ValueError(f'data.solutions={config.data.solutions!r}: expected '
                     "'flawed' or 'policy'")
  if config.data.group_size < 2 and config.objective == 'ranking':
    raise ValueError('ranking needs data.group_size >= 2')


def make_loss_fn(model, config: ml_collections.ConfigDict):
  """loss_fn(params, batch, rng, frozen) for the objective (module doc)."""
  objective = config.objective

  def loss_fn(params, batch, rng, frozen):
    del rng, frozen
    logits = model.apply({'params': params}, batch['tokens'],
                         segment_ids=batch['segment_ids'])  # [B, T]
    if objective == 'prm':
      return reward_losses.step_bce_loss(
          logits, batch['labels'], batch['label_mask'],
          first_error_only=config.first_error_only)
    b = logits.shape[0]
    scores = logits[jnp.arange(b), batch['last']]  # [B] at the last token.
    if objective == 'orm':
      return reward_losses.outcome_loss(scores, batch['correct'],
                                        config.orm_loss)
    return reward_losses.ranking_loss(scores, batch['correct'] > 0,
                                      batch['group'])

  return loss_fn


def build_examples(config: ml_collections.ConfigDict, sample_fn=None
                   ) -> list[step_labels.StepExample]:
  """Grouped synthetic examples, a `label_fraction` share of the questions.

  `sample_fn(prompts, n) -> n texts per prompt` writes the solutions when
  `data.solutions == 'policy'`.
  """
  d = config.data
  problems = sources.train_problems(d.task, int(d.num_train), int(d.seed))
  keep = max(1, int(round(d.label_fraction * len(problems))))
  order = np.random.default_rng([int(d.seed), 7]).permutation(len(problems))
  problems = [problems[i] for i in sorted(order[:keep])]
  logging.info('PRM data: %d questions (label_fraction %.3f) x %d %s '
               'solutions', len(problems), d.label_fraction, d.group_size,
               d.solutions)
  if d.solutions == 'flawed':
    return step_labels.synthetic_examples(
        problems, group_size=int(d.group_size),
        flawed_prob=float(d.flawed_prob), seed=int(d.seed))
  texts = sample_fn([synthetic.format_prompt(p) for p in problems],
                    int(d.group_size))
  examples = [step_labels.checked_example(p, t, group=g,
                                          id_=f'policy-{g}-{j}')
              for g, (p, ts) in enumerate(zip(problems, texts))
              for j, t in enumerate(ts)]
  logging.info('Policy samples: %.3f answer-correct, %.3f of steps labelled '
               'correct', np.mean([e.answer_correct for e in examples]),
               np.mean(np.concatenate([e.labels for e in examples])))
  return examples


def policy_sampler(config, params, model_cfg, tokenizer):
  """sample_fn for build_examples: `data.sample` settings, shared prefill."""
  s = config.data.sample
  sampler = Sampler(model_cfg, cache_size=int(config.max_len),
                    tokenizer=tokenizer)
  add_bos = tokenizer.bos_id is not None

  def sample_fn(prompts, n):
    out = []
    for b in range(0, len(prompts), int(s.batch_prompts)):
      ids = [tokenizer.encode(t, add_bos=add_bos)
             for t in prompts[b:b + int(s.batch_prompts)]]
      comps = sampler.generate(params, ids, n=n, rng=config.seed + b,
                               max_new_tokens=int(s.max_new_tokens),
                               temperature=float(s.temperature))
      out += [[c.text for c in cs] for cs in comps]
      logging.info('Sampled solutions for %d / %d questions', len(out),
                   len(prompts))
    return out

  return sample_fn


def relabel_with_rollouts(config, examples, params, model_cfg, tokenizer):
  """Math-Shepherd labels from the initial policy (config.rollout)."""
  r = config.rollout
  reward_fn = task_rewards.make_reward_fn({'kind': 'synthetic'}, tokenizer)
  problems = {p.question: p for p in sources.train_problems(
      config.data.task, int(config.data.num_train), int(config.data.seed))}
  records = [{'answer': problems[e.question].answer,
              'problem': problems[e.question]} for e in examples]
  labels = rollout_labels(
      params, model_cfg, tokenizer, [e.question for e in examples],
      [e.steps for e in examples], records, reward_fn, n=int(r.n),
      max_new_tokens=int(r.max_new_tokens),
      temperature=float(r.temperature), seed=config.seed,
      cache_size=int(config.max_len) + int(r.max_new_tokens))
  gold = np.concatenate([e.labels for e in examples])
  new = np.concatenate([getattr(l, r.kind) for l in labels])
  logging.info('Rollout labels (%s, n=%d): agree with gold on %.3f of steps',
               r.kind, r.n, float(((new >= 0.5) == (gold >= 0.5)).mean()))
  return with_rollout_labels(examples, labels, r.kind)


def example_arrays(examples, tokenizer, config) -> dict[str, np.ndarray]:
  """[N, W] tokens / segment_ids / labels / label_mask, [N] last, correct,
  group (W: the longest example rounded to a power of two, <= max_len)."""
  sep = tokenizer.encode(config.separator)
  enc = [step_labels.encode_example(tokenizer, e.question, e.steps, e.labels,
                                    separator_ids=sep,
                                    max_len=int(config.max_len))
         for e in examples]
  width = min(bucket(max(len(e['tokens']) for e in enc), 32),
              int(config.max_len))
  arrays = step_labels.batch_arrays(enc, width)
  arrays['correct'] = np.asarray([e.answer_correct for e in examples],
                                 np.float32)
  arrays['group'] = np.asarray([e.group for e in examples], np.int32)
  return arrays


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains; returns final metrics and the held-out ProcessBench-style eval."""
  check_config(config)
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.rules_from_config(config.get('sharding_rules'))

  # Policy (the LM the reward model starts from) and tokenizer.
  policy_params = None
  config = ml_collections.ConfigDict(config.to_dict())  # Resolved copy.
  if config.init_workdir:
    model_cfg, policy_params, tokenizer = load_policy(
        config.init_workdir, mesh=mesh, rules=rules)
    config.model = run_config.load_run_config(config.init_workdir).model
  else:
    tokenizer = run_config.tokenizer_from_config(config.tokenizer)
    model_cfg = run_config.model_config_from(config.model,
                                             tokenizer.vocab_size)
  run_config.save_run_config(workdir, config, tokenizer)  # For load_prm.
  model = make_reward_model(model_cfg, config.head, tokenizer)

  # Data: grouped examples, encoded once.
  if policy_params is None and (config.rollout.n > 0 or
                                 config.data.solutions == 'policy'):
    logging.warning('samples from a random policy (debug only)')
    policy_params = init_reward_params(model,
                                       jax.random.key(config.seed))['lm']
  sample_fn = None
  if config.data.solutions == 'policy':
    sample_fn = policy_sampler(config, jax.device_get(policy_params),
                               model_cfg, tokenizer)
  examples = build_examples(config, sample_fn)
  if config.rollout.n > 0:
    examples = relabel_with_rollouts(config, examples,
                                     jax.device_get(policy_params),
                                     model_cfg, tokenizer)
  arrays = example_arrays(examples, tokenizer, config)
  group_size = int(config.data.group_size)
  num_groups = len(examples) // group_size

  # Model and state.
  tx_factory = lambda mask: optim.make_optimizer(config.optim, mask)[0]
  init_params = lambda rng: model.init(rng, jnp.zeros((1, 1), jnp.int32))[
      'params']
  rng = jax.random.PRNGKey(config.seed)
  abstract, shardings, init = abstract_train_state(init_params, tx_factory,
                                                   rng, mesh, rules)

  def fresh_state():
    state = jax.jit(init, out_shardings=shardings)(rng)
    if policy_params is not None:  # The LM from the policy, a fresh head.
      lm = jax.device_put(policy_params, shardings.params['lm'])
      state = state.replace(params=dict(state.params, lm=lm))
    return state

  run = run_context.RunContext.from_config(workdir, config)
  state, start = run.restore_or_init(abstract, fresh_state)

  # Step.
  train_step = make_train_step(
      make_loss_fn(model, config), shardings, mesh,
      schedule=optim.make_schedule(config.optim), rules=rules,
      grad_accum_steps=config.grad_accum_steps)
  batch_sh = batch_sharding(mesh, rules)
  step_rng = jax.random.PRNGKey(config.seed + 1)

  # Loop.
  metrics = {}
  for step in range(start, config.total_steps):
    groups = pipeline.epoch_indices(step, config.groups_per_step, num_groups,
                            config.seed)
    rows = (groups[:, None] * group_size + np.arange(group_size)).ravel()
    batch = jax.device_put({k: v[rows] for k, v in arrays.items()}, batch_sh)
    state, metrics = train_step(state, batch, step_rng)
    tokens = float(arrays['segment_ids'][rows].sum())
    if run.after_step(step + 1, state, metrics, tokens=tokens):
      break
  run.close()
  result: dict[str, Any] = {
      'final_metrics': {k: float(v) for k, v in
                        jax.device_get(metrics).items()},
      'num_examples': len(examples), 'num_questions': num_groups}

  # Held-out ProcessBench-format evaluation (threshold picked on 'dev').
  if config.eval.num > 0:
    cls = DiscriminativePRM if config.objective == 'prm' else OutcomeRM
    verifier = cls(jax.device_get(state.params), model_cfg, tokenizer,
                   head=config.head, separator=config.separator,
                   max_len=int(config.max_len),
                   batch_size=int(config.eval.batch_size))
    subsets = processbench.synthetic_dev_test(
        config.data.task, int(config.eval.num), seed=int(config.eval.seed))
    res = processbench.evaluate_verifier(verifier, subsets, pick_on='dev')
    result['eval'] = res
    logging.info('Held-out synthetic ProcessBench: test F1 %.3f (oracle '
                 '%.3f), threshold %.3f', res['subsets']['test']['f1'],
                 res['subsets']['test']['oracle_f1'], res['threshold'])
    if jax.process_index() == 0:
      processbench.write_results(workdir, 'processbench_synthetic', res,
                                 f'{config.objective} ({config.head} head)')
  if jax.process_index() == 0:
    plots.plot_learning_curves(workdir, keys=('loss', 'accuracy'))
    with open(os.path.join(workdir, 'result.json'), 'w') as f:
      json.dump(result, f, indent=1, default=str)
  return result
