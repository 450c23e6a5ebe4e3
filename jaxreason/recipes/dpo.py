"""DPO on semi-on-policy pairs (Light-R1's final stage).

  from jaxreason.recipes import dpo
  result = dpo.train(get_config('debug'), '/tmp/dpo')

Reads top to bottom: policy and data -> state (resumed if the workdir has a
checkpoint) -> preference pairs (built once, saved to workdir/pairs.jsonl) ->
jitted step -> loop -> held-out greedy pass@1 before and after.

Pairs (`build_pairs`). For each training prompt, K samples of the initial
policy are verified with the task reward. chosen = a verified-correct
response from a stronger source (`record['chosen']` candidates: the
generator's reference solution for the synthetic task, a `chosen` field or
a teacher file for JSONL data; the first one that verifies); rejected = up
to `max_pairs_per_prompt` distinct samples of the policy itself that verify
as WRONG. Prompts where the policy makes no mistake in K samples (or no
chosen verifies) give no pair; the counts are logged and returned.

Reference. The reference policy is the initial policy and never changes, so
each pair's reference log-probs are computed once, with the state's params
(sharded on the mesh) before the first step, by a jitted function with
explicit in / out shardings (`reference_logps`: the outputs stay on the
devices until one fetch at the end), and stored in pairs.jsonl (like TRL's
`precompute_ref_log_probs`). This costs one forward pass per pair in total
instead of one per pair per step, and keeps no second copy of the weights on
the devices, which passing them as the step's `frozen` argument would. (For
iterative DPO, run again with `policy` = this workdir: new pairs, new
reference.)

Loss. `losses.dpo.dpo_loss` on completion log-probs at temperature 1:
summed over completion tokens for sigmoid and nca_pair, averaged for ipo
(as TRL does). A batch holds `pairs_per_step` pairs, drawn from epochs of a
seeded permutation: a function of (seed, step), so resuming needs only the
train state and pairs.jsonl (which a rerun in the same workdir always reuses:
delete it to build pairs again).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxreason.data import pipeline, sources
from jaxreason.data.tokenizer import Tokenizer
from jaxreason.evals import pass_at_k
from jaxreason.losses.dpo import LOSS_TYPES, dpo_loss
from jaxreason.models.transformer import Transformer, TransformerConfig
from jaxreason.recipes.grpo import load_policy_or_init
from jaxreason.rewards import task_rewards
from jaxreason.rl import selection
from jaxreason.rl.rollout import safe_rewards
from jaxreason.sampling.scoring import token_logprobs
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train import optim, plots, run_context
from jaxreason.train.state import state_from_params
from jaxreason.train.step import batch_sharding, make_train_step

PAIRS_FILE = 'pairs.jsonl'


def check_config(config: ml_collections.ConfigDict) -> None:
  """Rejects inconsistent settings before anything is built."""
  if config.loss_type not in LOSS_TYPES:
    raise ValueError(f'loss_type={config.loss_type!r}: expected one of '
                     f'{LOSS_TYPES}')
  if config.beta <= 0:
    raise ValueError(f'beta={config.beta} must be > 0')
  if not 0.0 <= config.label_smoothing < 0.5 or (
      config.label_smoothing and config.loss_type != 'sigmoid'):
    raise ValueError(f'label_smoothing={config.label_smoothing} must be in '
                     '[0, 0.5), and 0 unless loss_type is sigmoid')
  if config.num_candidates < 1 or config.max_pairs_per_prompt < 1:
    raise ValueError(f'num_candidates={config.num_candidates} and '
                     f'max_pairs_per_prompt={config.max_pairs_per_prompt} '
                     'must be >= 1')
  if config.pairs_per_step < 1 or config.pairs_per_step % (
      config.grad_accum_steps):
    raise ValueError(f'pairs_per_step={config.pairs_per_step} must be >= 1 '
                     'and divisible by grad_accum_steps='
                     f'{config.grad_accum_steps}')


# Pairs -------------------------------------------------------------------------


@dataclasses.dataclass
class Pair:
  """One preference pair; ids are token ids, ref_* summed reference log-probs."""

  index: int  # The training record.
  prompt: str
  chosen: str
  rejected: str
  rejected_reward: float
  prompt_ids: list[int]
  chosen_ids: list[int]  # The chosen text's ids, then EOS (as SFT trains).
  rejected_ids: list[int]  # The policy's sampled ids (its EOS included).
  ref_chosen: float = float('nan')
  ref_rejected: float = float('nan')


def build_pairs(params: Any, model_cfg: TransformerConfig,
                tokenizer: Tokenizer, records: Sequence[Mapping[str, Any]],
                reward_fn: selection.RewardFn, *, num_candidates: int,
                max_new_tokens: int, temperature: float = 1.0,
                top_p: float = 1.0, seed: int = 0,
                correct_threshold: float = 1.0, max_pairs_per_prompt: int = 1,
                batch_prompts: int = 16, stop_strings: Sequence[str] = ()
                ) -> tuple[list[Pair], dict[str, float]]:
  """Semi-on-policy pairs (module docstring); returns (pairs, statistics)."""
  scored = selection.sample_and_reward(
      params, model_cfg, tokenizer, records, reward_fn, n=num_candidates,
      max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
      seed=seed, batch_prompts=batch_prompts, stop_strings=stop_strings)
  # Verify the stronger source's candidates; keep the first that passes.
  cands = [list(r.get('chosen') or []) for r in records]
  flat = [(i, c) for i, cs in enumerate(cands) for c in cs]
  ok = safe_rewards(reward_fn, [c for _, c in flat],
                    [records[i] for i, _ in flat]) >= correct_threshold
  chosen: dict[int, str] = {}
  for (i, c), good in zip(flat, ok):
    if good and i not in chosen:
      chosen[i] = c
  add_bos = tokenizer.bos_id is not None
  pairs, no_wrong, no_chosen = [], 0, 0
  for i, rec in enumerate(records):
    wrong = [j for j in range(num_candidates)
             if scored.rewards[i, j] < correct_threshold]
    if not wrong:
      no_wrong += 1
      continue
    if i not in chosen:
      no_chosen += 1
      continue
    prompt_ids = tokenizer.encode(rec['prompt'], add_bos=add_bos)
    chosen_ids = tokenizer.encode(chosen[i], add_eos=True)
    seen = set()
    for j in wrong:
      ids = tuple(scored.completion_ids[i][j])
      if not ids or ids in seen:
        continue
      seen.add(ids)
      pairs.append(Pair(index=int(rec.get('_index', i)), prompt=rec['prompt'],
                        chosen=chosen[i], rejected=scored.texts[i][j],
                        rejected_reward=float(scored.rewards[i, j]),
                        prompt_ids=list(prompt_ids),
                        chosen_ids=list(chosen_ids), rejected_ids=list(ids)))
      if len(seen) == max_pairs_per_prompt:
        break
  stats = {
      'prompts': float(len(records)),
      'pairs': float(len(pairs)),
      'skipped_no_wrong_sample': float(no_wrong),
      'skipped_no_verified_chosen': float(no_chosen),
      'policy_sample_accuracy': float(
          (scored.rewards >= correct_threshold).mean()) if records else 0.0,
  }
  logging.info('DPO pairs: %d from %d prompts (%d skipped: no wrong sample '
               'in %d; %d: no verified chosen); policy sample accuracy %.3f',
               len(pairs), len(records), no_wrong, num_candidates, no_chosen,
               stats['policy_sample_accuracy'])
  return pairs, stats


def pair_arrays(pairs: Sequence[Pair], width: int) -> dict[str, np.ndarray]:
  """Fixed-shape arrays of all pairs (axis 1: 0 chosen, 1 rejected).

  tokens [P, 2, W] int32 (prompt + completion, right-padded, cut at W);
  mask [P, 2, W-1] float32, entry t = 1 where token t+1 is a completion token
  (the layout `token_logprobs` returns); ref [P, 2] the stored reference
  sums (NaN until computed).
  """
  n = len(pairs)
  tokens = np.zeros((n, 2, width), np.int32)
  mask = np.zeros((n, 2, width - 1), np.float32)
  ref = np.zeros((n, 2), np.float32)
  for p, pair in enumerate(pairs):
    for k, comp in enumerate((pair.chosen_ids, pair.rejected_ids)):
      seq = (pair.prompt_ids + comp)[:width]
      tokens[p, k, :len(seq)] = seq
      mask[p, k, len(pair.prompt_ids) - 1:len(seq) - 1] = 1.0
    ref[p] = (pair.ref_chosen, pair.ref_rejected)
  return {'tokens': tokens, 'mask': mask, 'ref_logps': ref}


def save_pairs(path: str, pairs: Sequence[Pair], stats: Mapping[str, float]
               ) -> None:
  """JSONL: a first line of statistics, then one pair per line (atomic)."""
  with open(path + '.tmp', 'w') as f:
    f.write(json.dumps({'stats': dict(stats)}) + '\n')
    for p in pairs:
      f.write(json.dumps(dataclasses.asdict(p)) + '\n')
  os.replace(path + '.tmp', path)


def load_pairs(path: str) -> tuple[list[Pair], dict[str, float]]:
  rows = sources.read_jsonl(path)
  return [Pair(**r) for r in rows[1:]], rows[0]['stats']


# Loss ------------------------------------------------------------------------


def sequence_logps(params: Any, model_cfg: TransformerConfig,
                   tokens: jax.Array, mask: jax.Array) -> jax.Array:
  """Summed completion log-probs: tokens [P, 2, W], mask [P, 2, W-1] -> [P, 2]."""
  p, two, w = tokens.shape
  assert two == 2 and mask.shape == (p, 2, w - 1), (
      f'tokens {tokens.shape} must be [P, 2, W], mask {mask.shape} [P, 2, W-1]')
  logps = token_logprobs(params, model_cfg, tokens.reshape(p * two, w))
  return (logps * mask.reshape(p * two, w - 1)).sum(-1).reshape(p, two)


def make_loss_fn(model_cfg: TransformerConfig,
                 config: ml_collections.ConfigDict):
  """loss_fn(params, batch, rng, frozen) for the jitted train step."""
  average = config.loss_type == 'ipo'  # TRL: ipo on mean token log-probs.

  def loss_fn(params, batch, rng, frozen):
    del rng, frozen
    policy = sequence_logps(params, model_cfg, batch['tokens'],
                            batch['mask'])  # [P, 2]
    ref = batch['ref_logps']  # [P, 2]
    policy_raw = policy
    if average:
      lengths = jnp.maximum(batch['mask'].sum(-1), 1.0)  # [P, 2]
      policy, ref = policy / lengths, ref / lengths
    loss, metrics = dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0],
                             ref[:, 1], beta=config.beta,
                             loss_type=config.loss_type,
                             label_smoothing=config.label_smoothing)
    if config.get('rpo_alpha', 0.0):
      # RPO (Pang et al., 2024; TRL `rpo_alpha`): + alpha * the token-mean
      # NLL of the chosen responses, which keeps their likelihood from
      # falling while the margin grows.
      nll = -policy_raw[:, 0].sum() / jnp.maximum(batch['mask'][:, 0].sum(),
                                                   1.0)
      loss = loss + config.rpo_alpha * nll
      metrics['nll_chosen'] = nll
      metrics['loss'] = loss
    metrics['logps/chosen'] = jax.lax.stop_gradient(policy[:, 0]).mean()
    metrics['logps/rejected'] = jax.lax.stop_gradient(policy[:, 1]).mean()
    return loss, metrics

  return loss_fn


# Training --------------------------------------------------------------------


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs DPO; returns pair statistics, final metrics and pass@1 before/after."""
  check_config(config)
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.rules_from_config(config.get('sharding_rules'))
  batch_sh = batch_sharding(mesh, rules)
  shards = int(np.prod([mesh.shape[a] for a in
                        jax.tree.leaves(tuple(batch_sh.spec))]))
  if config.pairs_per_step % shards:
    raise ValueError(f'pairs_per_step={config.pairs_per_step} must be '
                     f'divisible by the {shards} devices the batch is '
                     'split over')

  # Policy (an SFT workdir or a Hugging Face folder) and data.
  model_cfg, params, tokenizer = load_policy_or_init(config, mesh, rules)
  model = Transformer(model_cfg)
  train_records, eval_records = sources.preference_records(config.data)
  reward_fn = task_rewards.make_reward_fn(config.reward, tokenizer)
  threshold = float(config.reward.get('correct_threshold', 1.0))

  # State: the policy's weights with a fresh optimizer.
  tx_factory = lambda mask: optim.make_optimizer(config.optim, mask)[0]
  init_fn = lambda rng: model.init(rng, jnp.zeros((1, 1), jnp.int32))[
      'params']
  state, shardings = state_from_params(params, init_fn, tx_factory, mesh,
                                       rules)
  run = run_context.RunContext.from_config(workdir, config)
  state, start = run.resume(state, shardings)

  # Pairs and their reference log-probs, once (reloaded on resume).
  pairs_path = os.path.join(workdir, PAIRS_FILE)
  seq_logps_fn = make_seq_logps_fn(model_cfg, shardings.params, batch_sh)
  if os.path.exists(pairs_path):
    pairs, stats = load_pairs(pairs_path)
    logging.info('Loaded %d pairs from %s', len(pairs), pairs_path)
  else:
    pairs, stats = build_pairs(
        params, model_cfg, tokenizer,
        [r | {'_index': i} for i, r in enumerate(train_records)], reward_fn,
        num_candidates=config.num_candidates,
        max_new_tokens=config.max_new_tokens, temperature=config.temperature,
        top_p=config.top_p, seed=config.seed, correct_threshold=threshold,
        max_pairs_per_prompt=config.max_pairs_per_prompt,
        batch_prompts=config.sample_batch_prompts,
        stop_strings=tuple(config.stop_strings))
    if not pairs:
      raise ValueError(f'no preference pairs: {stats}')
    ref_params = state.params if start == 0 else jax.device_put(
        params, shardings.params)  # The initial policy either way.
    _set_reference(pairs, ref_params, seq_logps_fn, config.pairs_per_step,
                   _width(pairs, config), batch_sh)
    if jax.process_index() == 0:
      save_pairs(pairs_path, pairs, stats)
  del params
  arrays = pair_arrays(pairs, _width(pairs, config))

  # Jitted step.
  train_step = make_train_step(
      make_loss_fn(model_cfg, config), shardings, mesh,
      schedule=optim.make_schedule(config.optim), rules=rules,
      grad_accum_steps=config.grad_accum_steps)

  def evaluate(params, tag):
    res = pass_at_k.evaluate(
        jax.device_get(params), model_cfg, tokenizer, eval_records,
        lambda text, rec: reward_fn([text], [rec])[0] >= threshold,
        max_new_tokens=config.max_new_tokens, temperature=0.0,
        stop_strings=tuple(config.stop_strings))
    logging.info('%s: held-out greedy pass@1 %.3f (95%% CI %.3f-%.3f, %d '
                 'problems)', tag, res['accuracy'], *res['ci95'],
                 res['num_problems'])
    return res

  result: dict[str, Any] = {'pairs': stats}
  if config.eval_before and start == 0 and eval_records:
    result['eval_before'] = evaluate(state.params, 'before DPO')

  # Loop.
  rng = jax.random.key(config.seed)
  metrics = {}
  for step in range(start, config.total_steps):
    idx = pipeline.epoch_indices(step, config.pairs_per_step, len(pairs), config.seed)
    batch = jax.device_put({k: v[idx] for k, v in arrays.items()}, batch_sh)
    state, metrics = train_step(state, batch, rng)
    metrics = dict(metrics, num_pairs=float(len(pairs)))
    tokens = float(arrays['mask'][idx].sum())
    if run.after_step(step + 1, state, metrics, tokens=tokens):
      break
  run.close()

  result['final_metrics'] = {k: float(v) for k, v in
                             jax.device_get(metrics).items()}
  if config.eval_after and eval_records:
    result['eval_after'] = evaluate(state.params, 'after DPO')
  if jax.process_index() == 0:
    plots.plot_learning_curves(workdir, keys=('loss', 'rewards/accuracies',
                                              'rewards/margins'))
    with open(os.path.join(workdir, 'result.json'), 'w') as f:
      json.dump(result, f, indent=1, default=str)
  return result


def _width(pairs: Sequence[Pair], config) -> int:
  """Row width: the longest pair rounded up to 32, capped at max_seq_len."""
  longest = max(len(p.prompt_ids) + max(len(p.chosen_ids),
                                        len(p.rejected_ids)) for p in pairs)
  width = -(-longest // 32) * 32
  return min(width, config.max_seq_len) if config.get('max_seq_len') else (
      width)


def make_seq_logps_fn(model_cfg: TransformerConfig, param_sh: Any,
                      batch_sh: Any) -> Callable[..., jax.Array]:
  """jit of `sequence_logps` with explicit shardings: params as the policy's,
  tokens / mask and the [P, 2] output split over the batch axes."""
  return jax.jit(lambda p, t, m: sequence_logps(p, model_cfg, t, m),
                 in_shardings=(param_sh, batch_sh, batch_sh),
                 out_shardings=batch_sh)


def reference_logps(ref_params, seq_logps_fn, tokens: np.ndarray,
                    mask: np.ndarray, chunk: int, batch_sh) -> np.ndarray:
  """Summed reference log-probs [P, 2] of all pairs, `chunk` pairs per call.

  DPO's reference log-probs are constant per pair, so they are computed
  once, on the mesh (the reference sharded like the policy, each chunk
  split over the batch axes), and fetched to the host once at the end, to
  be saved with the pairs (a resumed run needs no reference) and fed to
  each step with its batch like the tokens: no per-step reference forward
  and no per-chunk host round trip.
  """
  n = len(tokens)
  outs = []
  for start in range(0, n, chunk):
    idx = np.arange(start, start + chunk) % n  # The last chunk wraps round.
    part = jax.device_put((tokens[idx], mask[idx]), batch_sh)
    outs.append(seq_logps_fn(ref_params, *part))  # Stays on the devices.
  return np.concatenate(jax.device_get(outs))[:n]


def _set_reference(pairs, ref_params, seq_logps_fn, chunk, width, batch_sh
                   ) -> None:
  """Fills pairs' ref_chosen / ref_rejected (`reference_logps`)."""
  arrays = pair_arrays(pairs, width)
  ref = reference_logps(ref_params, seq_logps_fn, arrays['tokens'],
                        arrays['mask'], chunk, batch_sh)
  for pair, (c, r) in zip(pairs, ref.tolist()):
    pair.ref_chosen, pair.ref_rejected = c, r
