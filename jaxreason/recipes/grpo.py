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
from typing import Any, Callable

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


def make_loss_fn(model_cfg, config, apply=None):
  """loss_fn(params, batch, rng, frozen) for the jitted train step.

  `apply(params, tokens, rng) -> logits` defaults to the plain Transformer.
  """
  loss_type = config.loss_type
  apply = apply or policy_fns(model_cfg, None).apply

  def loss_fn(params, batch, rng, frozen):
    logits = apply(params, batch['tokens'], rng)  # [N, W, V]
    logps = next_token_log_probs(logits, batch['tokens'],
                                 config.temperature)  # [N, W-1]
    old = batch['old_logps'] if config.num_iterations > 1 else None
    loss, metrics = grpo_loss(
        logps, old, batch.get('ref_logps'), batch['advantages'],
        batch['mask'], epsilon_low=config.epsilon_low,
        epsilon_high=config.epsilon_high, beta=config.beta,
        loss_type=loss_type,
        max_completion_length=config.max_new_tokens)
    # Gradient accumulation weight: tokens for token-mean losses, rows else.
    if loss_type in ('bnpo', 'dapo'):
      metrics['loss_weight'] = batch['mask'].sum()
    else:
      metrics['loss_weight'] = jnp.float32(batch['mask'].shape[0])
    return loss, metrics

  return loss_fn


def load_policy_or_init(config: ml_collections.ConfigDict):
  """(model config, params, tokenizer) of `config.policy`, or a random model."""
  if config.policy:
    return load_policy(config.policy)
  tokenizer = run_config.tokenizer_from_config(config.tokenizer)
  model_cfg = run_config.model_config_from(config.model, tokenizer.vocab_size)
  logging.warning('config.policy is empty: starting from a random model')
  return model_cfg, init_params(model_cfg, jax.random.key(config.seed)), (
      tokenizer)


@dataclasses.dataclass
class GRPOSetup:
  """What a GRPO run builds before its loop (also used by tools/bench_grpo)."""

  config: ml_collections.ConfigDict
  mesh: Any
  model_cfg: Any
  tokenizer: Any
  policy: PolicyFns
  lora_cfg: lora.LoraConfig | None
  train_records: list
  eval_records: list
  reward_fn: Callable
  state: Any  # TrainState (the policy's weights, a fresh optimizer).
  shardings: Any
  ref_params: Any  # Frozen host copy of the initial policy, or None.
  train_step: Callable
  ref_logps_fn: Callable
  batch_sh: Any
  width: int  # Static row width: prompt + max_new_tokens, rounded up.
  sampler: Sampler
  num_rows: int


def build(config: ml_collections.ConfigDict) -> GRPOSetup:
  """Policy, data, reward, sharded state and the jitted pieces of a run."""
  check_config(config)
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.rules_from_config(config.get('sharding_rules'))

  # Policy (an SFT workdir or a Hugging Face folder) and data.
  model_cfg, params, tokenizer = load_policy_or_init(config)
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
  # The reference: a frozen host copy of the initial policy, or with LoRA
  # the base inside the state (adapters off), read anew each step.
  ref_params = params if config.beta > 0 and lora_cfg is None else None
  del params

  # Jitted pieces.
  train_step = make_train_step(
      make_loss_fn(model_cfg, config, policy.apply), shardings, mesh,
      schedule=optim.make_schedule(config.optim), rules=rules,
      grad_accum_steps=config.grad_accum_steps)
  ref_apply = policy.reference or (lambda p, t: policy.apply(p, t, None))
  ref_logps_fn = jax.jit(lambda p, t: next_token_log_probs(
      ref_apply(p, t), t, config.temperature))
  prompt_len = max(len(tokenizer.encode(r['prompt'])) + 1
                   for r in train_records)
  width = -(-(prompt_len + config.max_new_tokens) // 32) * 32
  sampler = Sampler(model_cfg, cache_size=width, tokenizer=tokenizer,
                    stop_strings=tuple(config.stop_strings))
  return GRPOSetup(
      config=config, mesh=mesh, model_cfg=model_cfg, tokenizer=tokenizer,
      policy=policy, lora_cfg=lora_cfg, train_records=train_records,
      eval_records=eval_records, reward_fn=reward_fn, state=state,
      shardings=shardings, ref_params=ref_params, train_step=train_step,
      ref_logps_fn=ref_logps_fn, batch_sh=batch_sharding(mesh, rules),
      width=width, sampler=sampler,
      num_rows=config.prompts_per_step * config.group_size)


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs GRPO; returns final metrics and held-out pass@1 before and after."""
  s = build(config)
  model_cfg, tokenizer, policy = s.model_cfg, s.tokenizer, s.policy
  train_records, eval_records = s.train_records, s.eval_records
  reward_fn, sampler, width = s.reward_fn, s.sampler, s.width
  train_step, ref_logps_fn, ref_params = (s.train_step, s.ref_logps_fn,
                                          s.ref_params)
  batch_sh, num_rows = s.batch_sh, s.num_rows
  # The run's config with the policy's actual shape, so that `load_policy`
  # (and the generate CLI) can open this workdir like an SFT one.
  saved_config = ml_collections.ConfigDict(config.to_dict())
  saved_config.model = dataclasses.asdict(model_cfg)
  run_config.save_run_config(workdir, saved_config, tokenizer)
  run = run_context.RunContext.from_config(workdir, config)
  state, start = run.resume(s.state, s.shardings)
  s.state = None  # The loop owns (and donates) the state from here.

  def evaluate(params, tag):
    res = pass_at_k.evaluate(
        jax.device_get(params), model_cfg, tokenizer, eval_records,
        lambda text, rec: reward_fn([text], [rec])[0] >= config.reward.get(
            'correct_threshold', 1.0),
        max_new_tokens=config.max_new_tokens, temperature=0.0)
    logging.info('%s: held-out greedy pass@1 %.3f (95%% CI %.3f-%.3f, %d '
                 'problems)', tag, res['accuracy'], *res['ci95'],
                 res['num_problems'])
    return res

  result: dict[str, Any] = {}
  if config.eval_before and start == 0 and eval_records:
    result['eval_before'] = evaluate(policy.sampling_params(state.params),
                                     'before GRPO')

  rng = jax.random.key(config.seed)
  order = np.random.default_rng(config.seed)
  limr_path = os.path.join(workdir, 'limr_rewards.jsonl')
  metrics = {}
  for step in range(start, config.total_steps):
    t0 = time.perf_counter()
    step_rng = jax.random.fold_in(rng, step)
    # 1. Rollouts (with DAPO dynamic sampling).
    parts, kept, rounds = [], 0, 0
    sampling_params = policy.sampling_params(state.params)
    while kept < config.prompts_per_step:
      idx = _prompt_indices(step, rounds, config, len(train_records), order)
      recs = [train_records[i] | {'_index': int(i)} for i in idx]
      r = rollout_lib.sample_rollouts(
          sampling_params, sampler, tokenizer, recs, reward_fn,
          group_size=config.group_size, max_new_tokens=config.max_new_tokens,
          temperature=config.temperature, top_p=config.top_p,
          rng=jax.random.fold_in(step_rng, rounds))
      _log_limr(limr_path, r, step, len(train_records), config)
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
    del sampling_params
    t_rollout = time.perf_counter() - t0

    # 2. Advantages and the fixed-shape batch.
    adv = np.asarray(group_advantages(jnp.asarray(rollouts.rewards),
                                      config.group_size, config.scale_rewards))
    batch = rollout_lib.train_batch(
        rollouts, adv, width=width, num_rows=num_rows,
        mask_truncated=config.mask_truncated_completions)
    if config.beta > 0:
      ref = state.params if ref_params is None else ref_params
      batch['ref_logps'] = np.asarray(ref_logps_fn(ref, batch['tokens']))
    batch = jax.device_put(batch, batch_sh)

    # 3. mu optimizer steps on the same rollouts.
    for _ in range(config.num_iterations):
      state, metrics = train_step(state, batch, step_rng)
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
  if eval_records:
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


def _prompt_indices(step, round_, config, n, rng) -> np.ndarray:
  """Deterministic prompts of (step, round): epochs of a seeded permutation."""
  p = config.prompts_per_step
  start = (step * config.max_sampling_rounds + round_) * p
  epoch, offset = divmod(start, n)
  perm = np.random.default_rng([config.seed, epoch]).permutation(n)
  idx = perm[offset:offset + p]
  if len(idx) < p:  # Wrap into the next epoch.
    nxt = np.random.default_rng([config.seed, epoch + 1]).permutation(n)
    idx = np.concatenate([idx, nxt[:p - len(idx)]])
  del rng
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
