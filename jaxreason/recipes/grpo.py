"""GRPO with the DAPO and Dr.GRPO variants.

  from jaxreason.recipes import grpo
  result = grpo.train(get_config('debug'), '/tmp/grpo')

One step: sample G completions for each of P prompts (one shared prefill per
prompt) -> rewards -> group advantages -> (DAPO dynamic sampling: drop groups
whose rewards are all equal, sample more prompts to refill) -> mu optimizer
steps on the clipped surrogate (+ beta * k3 KL to the frozen reference).

Choices (each a config field, meaning exactly what TRL's GRPOTrainer means):
  scale_rewards   group | batch | none       loss_type  grpo | bnpo | dr_grpo | dapo
  epsilon_low / epsilon_high (clip-higher)   beta (0 skips the reference)
  num_iterations (mu)                        mask_truncated_completions
  dynamic_sampling (DAPO)                    temperature (logits / T before log-softmax)
Old log-probs for mu > 1 are the sampler's own (log_softmax(logits / T) of
the sampled tokens under the policy that sampled them), so no extra forward
pass is spent on them; with mu = 1 the ratio is exactly 1.

Structure (as recipes/sft.py): `build` returns a frozen `GRPO` of static
pieces (data, sampler, shardings, the jitted step) plus the TrainState and
the frozen reference, which the loop passes explicitly; `rollout` and
`make_batch` are the step's host side (tools/bench_grpo.py times these same
calls). Everything trained or frozen lives on the mesh: the state with the
shardings of the logical rules, the reference (beta > 0) with the same
param shardings, passed as the step's non-donated `frozen` argument. The
reference log-probs are computed inside the jitted step (a forward of the
frozen params under stop_gradient), so they never leave the devices; with
mu > 1 each of the mu steps recomputes them (one extra forward per step).

Gradient accumulation (`grad_accum_steps`) follows TRL: grpo, bnpo and
dr_grpo normalise each micro-batch on its own (bnpo by the micro-batch's
completion tokens) and average micro-batches equally; dapo normalises by
the tokens of the whole batch (micro-batches weighted by their tokens).

LoRA (`config.lora.rank > 0`, variant 'lora'): the state's params are
{'base', 'lora'} with only the adapters trained; rollouts and evaluation
sample from the merged weights, the loss runs the adapted model (with LoRA
dropout, which also perturbs the mu > 1 importance ratio: the 'lora' variant
keeps it 0), and the reference policy is the base itself with adapters off,
so no second copy of the weights is kept. See `policy_fns`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxreason.data import sources
from jaxreason.evals import pass_at_k
from jaxreason.losses.grpo import group_advantages, grpo_loss
from jaxreason.losses.sft import next_token_log_probs
from jaxreason.models import hf
from jaxreason.models import lora
from jaxreason.models.transformer import Transformer, init_params
from jaxreason.rewards import task_rewards
from jaxreason.rl import rollout as rollout_lib
from jaxreason.sampling import Sampler
from jaxreason.sampling.policy import load_policy
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train import optim, plots, run_config, run_context
from jaxreason.train.state import state_from_params
from jaxreason.train.step import batch_sharding, make_train_step


def check_config(config: ml_collections.ConfigDict) -> None:
  """Rejects inconsistent settings before anything is built."""
  if config.prompts_per_step < 1 or config.group_size < 2:
    raise ValueError(
        f'prompts_per_step={config.prompts_per_step} must be >= 1 and '
        f'group_size={config.group_size} >= 2 (advantages need a group)')
  rows = config.prompts_per_step * config.group_size
  if rows % config.grad_accum_steps:
    raise ValueError(
        f'prompts_per_step * group_size = {rows} rows is not divisible by '
        f'grad_accum_steps={config.grad_accum_steps}')
  if config.num_iterations < 1:
    raise ValueError(f'num_iterations (mu)={config.num_iterations} must be >= 1')


@dataclasses.dataclass(frozen=True)
class PolicyFns:
  """How the state's params are used; plain params or LoRA's {'base', 'lora'}.

  apply(params, tokens, rng) -> logits [N, W, V] of the trained policy.
  reference(params, tokens) -> logits of the frozen reference, or None when
    the reference is a separate frozen copy of the initial params.
  sampling_params(params) -> plain Transformer params for the sampler.
  """

  apply: Callable[..., jax.Array]
  reference: Callable[..., jax.Array] | None
  sampling_params: Callable[[Any], Any]


def policy_fns(model_cfg, lora_cfg: lora.LoraConfig | None) -> PolicyFns:
  """Full fine-tuning (lora_cfg None) or LoRA: adapted loss with dropout,
  the base with adapters off as reference, merged weights for sampling."""
  if lora_cfg is None:
    model = Transformer(model_cfg)
    return PolicyFns(
        apply=lambda p, t, rng: model.apply({'params': p}, t),
        reference=None, sampling_params=lambda p: p)
  adapted = lora.apply_fn(model_cfg, lora_cfg)
  return PolicyFns(
      apply=lambda p, t, rng: adapted(p, t, rng=rng, deterministic=False),
      reference=lambda p, t: adapted(p, t, adapters=False),
      sampling_params=jax.jit(functools.partial(lora.merge,
                                                lora_cfg=lora_cfg)))


def make_loss_fn(model_cfg, config, policy: PolicyFns | None = None):
  """loss_fn(params, batch, rng, frozen) for the jitted train step.

  batch: tokens [N, W] int32, mask / old_logps [N, W-1], advantages [N].
  With beta > 0 the reference log-probs are computed here, inside the
  jitted step: from `frozen` (the frozen initial params, sharded like the
  policy) or, with LoRA (`policy.reference`), from the base in `params`
  with adapters off (frozen is None). Both under stop_gradient.
  """
  loss_type = config.loss_type
  policy = policy or policy_fns(model_cfg, None)

  def loss_fn(params, batch, rng, frozen):
    tokens = batch['tokens']  # [N, W]
    logits = policy.apply(params, tokens, rng)  # [N, W, V]
    logps = next_token_log_probs(logits, tokens,
                                 config.temperature)  # [N, W-1]
    ref = None
    if config.beta > 0:
      ref_logits = (policy.reference(params, tokens) if policy.reference
                    else policy.apply(frozen, tokens, None))
      ref = jax.lax.stop_gradient(
          next_token_log_probs(ref_logits, tokens, config.temperature))
    old = batch['old_logps'] if config.num_iterations > 1 else None
    loss, metrics = grpo_loss(
        logps, old, ref, batch['advantages'], batch['mask'],
        epsilon_low=config.epsilon_low, epsilon_high=config.epsilon_high,
        beta=config.beta, loss_type=loss_type,
        max_completion_length=config.max_new_tokens)
    # Gradient accumulation weight (train/step.py). dapo normalises by the
    # tokens of the whole batch (TRL's num_items_in_batch), so micro-batches
    # weigh by their tokens; grpo, bnpo and dr_grpo are normalised within
    # each micro-batch and micro-batches weigh equally, as TRL's loss / GA
    # (bnpo: each micro-batch by its own token count).
    if loss_type == 'dapo':
      metrics['loss_weight'] = batch['mask'].sum()
    else:
      metrics['loss_weight'] = jnp.float32(1.0)
    return loss, metrics

  return loss_fn


def load_policy_or_init(config: ml_collections.ConfigDict, mesh: Any = None,
                        rules: Any = rules_lib.DEFAULT_RULES):
  """(model config, params, tokenizer) of `config.policy`, or a random model.

  With `mesh`, a loaded policy's parameters are read straight into their
  shardings on it (no device holds the whole model on the way).
  """
  if config.policy:
    return load_policy(config.policy, mesh=mesh, rules=rules)
  tokenizer = run_config.tokenizer_from_config(config.tokenizer)
  model_cfg = run_config.model_config_from(config.model, tokenizer.vocab_size)
  logging.warning('config.policy is empty: starting from a random model')
  return model_cfg, init_params(model_cfg, jax.random.key(config.seed)), (
      tokenizer)


@dataclasses.dataclass(frozen=True)
class GRPO:
  """The static pieces of a run: data, sampler, shardings, the jitted step.

  The train state and the frozen reference are not in here: `build` returns
  them beside it and the loop passes them explicitly, as in recipes/sft.py:

    g, state, frozen = grpo.build(config)
    rollouts, rounds = grpo.rollout(g, state.params, step)
    batch = grpo.make_batch(g, rollouts)
    state, metrics = g.train_step(state, batch, grpo.step_rng(g, step), frozen)

  `train_step(state, batch, rng, frozen) -> (state, metrics)` is jitted with
  the state's shardings (donated), the batch's and, for `frozen`, the
  reference's (`frozen_shardings`: the policy's param shardings from the
  same logical rules; None when there is no separate reference: beta = 0,
  or LoRA, whose reference is the base inside the state).
  """

  config: ml_collections.ConfigDict
  mesh: Any
  rules: Any
  model_cfg: Any
  tokenizer: Any
  policy: PolicyFns
  lora_cfg: lora.LoraConfig | None
  train_records: Sequence[dict]
  eval_records: Sequence[dict]
  reward_fn: Callable
  sampler: Sampler
  width: int  # Static row width: prompt + max_new_tokens, rounded up.
  num_rows: int  # prompts_per_step * group_size.
  shardings: Any  # Of the TrainState.
  frozen_shardings: Any  # Of the frozen reference params, or None.
  batch_sh: Any
  train_step: Callable[..., tuple[Any, dict]]


def build(config: ml_collections.ConfigDict, mesh: Any = None
          ) -> tuple[GRPO, Any, Any]:
  """(GRPO pieces, initial TrainState, frozen reference params or None).

  `mesh` defaults to `make_mesh(config.mesh)`. The reference (beta > 0,
  full fine-tuning) is a copy of the initial params placed with the
  policy's param shardings; the step reads it as its non-donated `frozen`.
  """
  check_config(config)
  mesh = mesh or mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.rules_from_config(config.get('sharding_rules'))

  # Policy (an SFT workdir or a Hugging Face folder) and data.
  model_cfg, params, tokenizer = load_policy_or_init(config, mesh, rules)
  model = Transformer(model_cfg)
  lora_cfg = lora.config_from(config.get('lora'))
  policy = policy_fns(model_cfg, lora_cfg)
  train_records, eval_records = sources.rl_records(config.data)
  reward_fn = task_rewards.make_reward_fn(config.reward, tokenizer)

  # State: the policy's weights with a fresh optimizer.
  tx_factory = lambda mask: optim.make_optimizer(config.optim, mask)[0]
  init_fn = lambda rng: model.init(rng, jnp.zeros((1, 1), jnp.int32))[
      'params']
  trainable = None
  if lora_cfg is not None:  # Fresh adapters (B = 0) on the policy as base.
    params = lora.init_params(model_cfg, lora_cfg,
                              jax.random.key(config.seed + 1), params)
    init_fn = lambda rng: lora.init_params(model_cfg, lora_cfg, rng)
    trainable = lora.trainable_mask
  state, shardings = state_from_params(params, init_fn, tx_factory, mesh,
                                       rules, trainable)
  # The reference: a frozen copy of the initial policy sharded like it, or
  # with LoRA the base inside the state (adapters off).
  frozen, frozen_sh = None, None
  if config.beta > 0 and lora_cfg is None:
    frozen_sh = shardings.params
    # Its own buffers (jnp.copy: jit would forward an unchanged input), so
    # donating the state never deletes the reference.
    frozen = jax.jit(lambda p: jax.tree.map(jnp.copy, p),
                     in_shardings=(frozen_sh,), out_shardings=frozen_sh)(params)
  del params

  step = make_train_step(
      make_loss_fn(model_cfg, config, policy), shardings, mesh,
      schedule=optim.make_schedule(config.optim), rules=rules,
      grad_accum_steps=config.grad_accum_steps, frozen_shardings=frozen_sh)
  if frozen_sh is None:
    train_step = lambda state, batch, rng, frozen=None: step(state, batch,
                                                              rng)
  else:
    train_step = step
  prompt_len = max(len(tokenizer.encode(r['prompt'])) + 1
                   for r in train_records)
  width = -(-(prompt_len + config.max_new_tokens) // 32) * 32
  sampler = Sampler(model_cfg, cache_size=width, tokenizer=tokenizer,
                    stop_strings=tuple(config.stop_strings))
  g = GRPO(config=config, mesh=mesh, rules=rules, model_cfg=model_cfg,
           tokenizer=tokenizer, policy=policy, lora_cfg=lora_cfg,
           train_records=train_records, eval_records=eval_records,
           reward_fn=reward_fn, sampler=sampler, width=width,
           num_rows=config.prompts_per_step * config.group_size,
           shardings=shardings, frozen_shardings=frozen_sh,
           batch_sh=batch_sharding(mesh, rules), train_step=train_step)
  return g, state, frozen


def step_rng(g: GRPO, step: int) -> jax.Array:
  """The rng of step `step`: rollouts fold in the round, the step its count."""
  return jax.random.fold_in(jax.random.key(g.config.seed), step)


def step_records(g: GRPO, step: int, round_: int = 0) -> list[dict]:
  """The training records sampled in (step, round), with their '_index'."""
  idx = _prompt_indices(step, round_, g.config, len(g.train_records))
  return [g.train_records[i] | {'_index': int(i)} for i in idx]


def rollout(g: GRPO, params: Any, step: int, *,
            on_round: Callable[[rollout_lib.Rollouts], None] | None = None
            ) -> tuple[rollout_lib.Rollouts, int]:
  """The step's rollouts from the state's params; returns (rollouts, rounds).

  G samples of each of P prompts, rewarded; with DAPO dynamic sampling,
  groups whose rewards are all equal are dropped and more prompts sampled
  (up to max_sampling_rounds). `on_round(rollouts)` sees every round's
  rollouts before filtering (the recipe logs LIMR rewards there).
  """
  config = g.config
  rng = step_rng(g, step)
  sampling_params = g.policy.sampling_params(params)
  parts, kept, rounds = [], 0, 0
  while kept < config.prompts_per_step:
    r = rollout_lib.sample_rollouts(
        sampling_params, g.sampler, g.tokenizer, step_records(g, step, rounds),
        g.reward_fn, group_size=config.group_size,
        max_new_tokens=config.max_new_tokens, temperature=config.temperature,
        top_p=config.top_p, rng=jax.random.fold_in(rng, rounds))
    if on_round is not None:
      on_round(r)
    rounds += 1
    if config.dynamic_sampling:
      varied = r.group_rewards().std(axis=1) > 0
      if rounds >= config.max_sampling_rounds:
        varied |= True  # Give up filtering: keep what we have.
      r = r.select_groups(varied)
    parts.append(r)
    kept += len(r.records)
  rollouts = rollout_lib.Rollouts.concat(parts)
  if len(rollouts.records) > config.prompts_per_step:
    keep = np.zeros(len(rollouts.records), bool)
    keep[:config.prompts_per_step] = True
    rollouts = rollouts.select_groups(keep)
  return rollouts, rounds


def make_batch(g: GRPO, rollouts: rollout_lib.Rollouts) -> dict[str, Any]:
  """Group advantages and the fixed-shape batch, placed with the step's
  batch sharding: tokens [N, W], mask / old_logps [N, W-1], advantages [N]."""
  adv = np.asarray(group_advantages(jnp.asarray(rollouts.rewards),
                                    g.config.group_size,
                                    g.config.scale_rewards))
  batch = rollout_lib.train_batch(
      rollouts, adv, width=g.width, num_rows=g.num_rows,
      mask_truncated=g.config.mask_truncated_completions)
  return jax.device_put(batch, g.batch_sh)


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs GRPO; returns final metrics and held-out pass@1 before and after."""
  g, state, frozen = build(config)
  model_cfg, tokenizer, policy = g.model_cfg, g.tokenizer, g.policy
  # The run's config with the policy's actual shape, so that `load_policy`
  # (and the generate CLI) can open this workdir like an SFT one.
  saved_config = ml_collections.ConfigDict(config.to_dict())
  saved_config.model = dataclasses.asdict(model_cfg)
  run_config.save_run_config(workdir, saved_config, tokenizer)
  run = run_context.RunContext.from_config(workdir, config)
  state, start = run.resume(state, g.shardings)

  def evaluate(params, tag):
    res = pass_at_k.evaluate(
        jax.device_get(params), model_cfg, tokenizer, g.eval_records,
        lambda text, rec: g.reward_fn([text], [rec])[0] >= config.reward.get(
            'correct_threshold', 1.0),
        max_new_tokens=config.max_new_tokens, temperature=0.0)
    logging.info('%s: held-out greedy pass@1 %.3f (95%% CI %.3f-%.3f, %d '
                 'problems)', tag, res['accuracy'], *res['ci95'],
                 res['num_problems'])
    return res

  result: dict[str, Any] = {}
  if config.eval_before and start == 0 and g.eval_records:
    result['eval_before'] = evaluate(policy.sampling_params(state.params),
                                     'before GRPO')

  limr_path = os.path.join(workdir, 'limr_rewards.jsonl')
  metrics = {}
  for step in range(start, config.total_steps):
    t0 = time.perf_counter()
    # 1. Rollouts (with DAPO dynamic sampling).
    rollouts, rounds = rollout(
        g, state.params, step,
        on_round=lambda r: _log_limr(limr_path, r, step,
                                     len(g.train_records), config))
    t_rollout = time.perf_counter() - t0
    # 2. Advantages and the fixed-shape batch, on the mesh.
    batch = make_batch(g, rollouts)
    # 3. mu optimizer steps on the same rollouts (the reference log-probs
    # are computed inside each, from `frozen`).
    for _ in range(config.num_iterations):
      state, metrics = g.train_step(state, batch, step_rng(g, step), frozen)
    # Wait for the update, so that the next step's rollout clock (and its
    # rollout tokens/s) does not include this update's tail.
    jax.block_until_ready(metrics)
    gen_tokens = sum(len(c) for c in rollouts.completion_ids)
    metrics = dict(metrics)
    metrics.update(_rollout_metrics(rollouts, rounds, gen_tokens,
                                    gen_tokens / max(t_rollout, 1e-9)))
    if run.after_step(step + 1, state, metrics, tokens=gen_tokens):
      break
  run.close()

  result['final_metrics'] = {k: float(v) for k, v in
                             jax.device_get(metrics).items()}
  if g.eval_records:
    result['eval_after'] = evaluate(policy.sampling_params(state.params),
                                    'after GRPO')
  if config.get('export_hf') and jax.process_index() == 0:  # LoRA merged.
    hf.save_checkpoint(config.export_hf, model_cfg,
                       jax.device_get(policy.sampling_params(state.params)))
    result['export_hf'] = config.export_hf
  if jax.process_index() == 0:
    plots.plot_learning_curves(workdir, keys=('reward', 'accuracy', 'kl',
                                              'completion_length'))
    with open(os.path.join(workdir, 'result.json'), 'w') as f:
      json.dump(result, f, indent=1, default=str)
  return result


def _prompt_indices(step, round_, config, n) -> np.ndarray:
  """Deterministic prompts of (step, round): epochs of a seeded permutation."""
  p = config.prompts_per_step
  start = (step * config.max_sampling_rounds + round_) * p
  epoch, offset = divmod(start, n)
  perm = np.random.default_rng([config.seed, epoch]).permutation(n)
  idx = perm[offset:offset + p]
  if len(idx) < p:  # Wrap into the next epoch.
    nxt = np.random.default_rng([config.seed, epoch + 1]).permutation(n)
    idx = np.concatenate([idx, nxt[:p - len(idx)]])
  return idx


def _rollout_metrics(r: rollout_lib.Rollouts, rounds: int, tokens: int,
                     tok_per_s: float) -> dict[str, float]:
  lengths = np.asarray([len(c) for c in r.completion_ids], np.float32)
  g = r.group_rewards()
  reasons = np.asarray(r.finish_reasons)
  return {
      'reward': float(r.rewards.mean()),
      'reward_std': float(r.rewards.std()),
      'groups_all_equal': float((g.std(axis=1) == 0).mean()),
      'completion_length': float(lengths.mean()),
      'truncated_fraction': float((reasons == 'length').mean()),
      'sampling_rounds': float(rounds),
      'rollout_tokens_per_sec': float(tok_per_s),
      'generated_tokens': float(tokens),
  }


def _log_limr(path, r: rollout_lib.Rollouts, step, n, config) -> None:
  """Appends each prompt's mean reward with its epoch (for tools/limr_select)."""
  if jax.process_index() != 0:
    return
  epoch = (step * config.max_sampling_rounds * config.prompts_per_step) // n
  with open(path, 'a') as f:
    for rec, rewards in zip(r.records, r.group_rewards()):
      f.write(json.dumps({'index': rec['_index'], 'epoch': int(epoch),
                          'step': int(step),
                          'reward': float(rewards.mean())}) + '\n')
