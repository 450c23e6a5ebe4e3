"""Supervised fine-tuning: masked next-token loss on completions, packed.

  from jaxreason.recipes import sft
  from configs.sft import synthetic
  result = sft.train(synthetic.get_config('debug'), '/tmp/sft')

Reads top to bottom: mesh -> tokenizer and data -> model and sharded state
(resumed if the workdir has a checkpoint) -> jitted step -> loop -> eval ->
optional Hugging Face export (`config.export_hf`).

LoRA (`config.lora.rank > 0`): params are {'base', 'lora'} (the base from
`init_checkpoint` / `init_workdir`, or random), only the adapters train, the
loss runs the adapted model with LoRA dropout, and evaluation and export use
the merged weights.
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

from jaxreason.data import pipeline, sources, synthetic
from jaxreason.evals import pass_at_k
from jaxreason.losses.sft import chunked_sft_loss, sft_loss
from jaxreason.models import hf
from jaxreason.models import lora
from jaxreason.models.transformer import Transformer, Unembed
from jaxreason.models.transformer import init_params as random_params
from jaxreason.rewards import task_rewards
from jaxreason.rl import selection
from jaxreason.sampling import policy
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train import optim, plots, run_config, run_context
from jaxreason.train.state import abstract_train_state
from jaxreason.train.step import LossFn, batch_sharding, make_train_step


def make_loss_fn(model: Transformer,
                 lora_cfg: lora.LoraConfig | None = None, *,
                 chunk_size: int = 0) -> LossFn:
  """`loss_fn(params, batch, rng, frozen)`: masked next-token loss.

  `batch` holds int32 [B, T] 'tokens', 'positions', 'segment_ids' and
  'loss_mask' (see data/pipeline.py); frozen is unused, rng drives LoRA
  dropout. With `lora_cfg`, params are {'base', 'lora'}. With chunk_size > 0
  (`config.loss.chunk_size`) the loss runs the model to its final hidden
  states and `chunked_sft_loss` unembeds chunk_size positions at a time: the
  same loss and gradients without [B, T, V] float32 logits at once (LoRA on
  lm_head is not supported there: the unembedding uses the base weights).
  """
  adapted = lora_cfg and lora.apply_fn(model.config, lora_cfg)
  if chunk_size and lora_cfg and any(
      p[0] == 'lm_head' for p in lora.targeted_layers(model.config,
                                                      lora_cfg)):
    raise ValueError('loss.chunk_size > 0 does not support LoRA on lm_head; '
                     'drop lm_head from lora.targets or set chunk_size=0')
  unembed = Unembed(model.config)

  def loss_fn(params, batch, rng, frozen):
    del frozen
    args = (batch['tokens'], batch['positions'], batch['segment_ids'])
    kw = dict(hidden_only=True) if chunk_size else {}
    if adapted:
      out = adapted(params, *args, rng=rng, deterministic=False, **kw)
    else:
      out = model.apply({'params': params}, *args, **kw)
    if not chunk_size:
      return sft_loss(out, batch['tokens'], batch['segment_ids'],
                      batch['loss_mask'])
    base = params['base'] if adapted else params
    logits_fn = lambda h: unembed.apply({'params': base}, h)
    return chunked_sft_loss(out, logits_fn, batch['tokens'],
                            batch['segment_ids'], batch['loss_mask'],
                            chunk_size)

  return loss_fn


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains; returns final metrics and (for tasks with answers) eval results."""
  config = with_generated_data(config, workdir)
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.rules_from_config(config.get('sharding_rules'))

  # Data.
  tokenizer = run_config.tokenizer_from_config(config.tokenizer)
  run_config.save_run_config(workdir, config, tokenizer)  # For load_policy(workdir).
  train_records, eval_records = sources.sft_records(config.data)
  train_records = filter_train_records(config, train_records, tokenizer,
                                       workdir)
  local_batch = config.batch_size // jax.process_count()
  dataset = pipeline.sft_dataset(
      train_records, tokenizer, seq_len=config.seq_len,
      batch_size=local_batch, seed=config.seed, pack=config.pack,
      masked_blocks=config.data.get('masked_blocks', ()))
  data_iter = iter(dataset)

  # Model and state.
  model_cfg = run_config.model_config_from(config.model, tokenizer.vocab_size)
  model = Transformer(model_cfg)
  logging.info('Model: %s (%.2fM parameters)', model_cfg,
               model_cfg.num_params() / 1e6)
  tx_factory = lambda mask: optim.make_optimizer(config.optim, mask)[0]
  schedule = optim.make_schedule(config.optim)
  lora_cfg = lora.config_from(config.get('lora'))
  dummy = jnp.zeros((1, 1), jnp.int32)
  init_params = lambda rng: model.init(rng, dummy)['params']
  trainable = None
  if lora_cfg is not None:  # Only the adapters train.
    init_params = lambda rng: lora.init_params(model_cfg, lora_cfg, rng)
    trainable = lora.trainable_mask
    logging.info('LoRA %s on %d layers', lora_cfg,
                 len(lora.targeted_layers(model_cfg, lora_cfg)))
  rng = jax.random.PRNGKey(config.seed)
  abstract, shardings, init = abstract_train_state(
      init_params, tx_factory, rng, mesh, rules, trainable)

  def with_base(state, params):
    """The state with these Transformer params (LoRA: as the base)."""
    if lora_cfg is None:
      return state.replace(params=jax.device_put(params, shardings.params))
    base = jax.device_put(params, shardings.params['base'])
    return state.replace(params=dict(state.params, base=base))

  def fresh_state():
    state = jax.jit(init, out_shardings=shardings)(rng)
    if config.get('init_checkpoint'):  # Start from pretrained HF weights.
      _, params = hf.load_checkpoint(config.init_checkpoint,
                                     dtype=model_cfg.dtype,
                                     param_dtype=model_cfg.param_dtype,
                                     scan_layers=model_cfg.scan_layers)
      state = with_base(state, params)
    if config.get('init_workdir'):  # Start from a jaxreason run's params.
      params = params_from_workdir(config.init_workdir, model_cfg)
      state = with_base(state, params)
    return state

  run = run_context.RunContext(workdir, config.total_steps,
                        save_every=config.checkpoint_every,
                        log_every=config.log_every)
  state, start = run.restore_or_init(abstract, fresh_state, data_iter)

  # Step.
  loss_fn = make_loss_fn(model, lora_cfg,
                         chunk_size=config.get('loss', {}).get('chunk_size', 0))
  train_step = make_train_step(loss_fn, shardings,
                               mesh,
                               schedule=schedule,
                               rules=rules,
                               grad_accum_steps=config.grad_accum_steps)
  batch_sh = batch_sharding(mesh, rules)
  step_rng = jax.random.PRNGKey(config.seed + 1)

  # Loop.
  metrics = {}
  for step in range(start, config.total_steps):
    batch = pipeline.global_batch(next(data_iter), batch_sh)
    state, metrics = train_step(state, batch, step_rng)
    tokens = config.batch_size * config.seq_len
    if run.after_step(step + 1, state, metrics, tokens=tokens,
                      data_iter=data_iter):
      break
  run.close()
  if jax.process_index() == 0:
    result_plot = plots.plot_learning_curves(workdir)
    logging.info('Learning curves: %s', result_plot)
  result = {'final_metrics': {k: float(v) for k, v in
                              jax.device_get(metrics).items()}}
  params = state.params  # Plain Transformer params for sampling and export.
  if lora_cfg is not None:
    params = jax.jit(lora.merge, static_argnums=1)(state.params, lora_cfg)

  # Evaluation: greedy accuracy on held-out problems with known answers.
  if eval_records and config.get('eval_max_new_tokens'):
    result['eval'] = evaluate(params, model_cfg, tokenizer, eval_records,
                              max_new_tokens=config.eval_max_new_tokens)
    logging.info('Held-out greedy accuracy: %.3f (%d problems)',
                 result['eval']['accuracy'], result['eval']['num_problems'])
    with open(os.path.join(workdir, 'eval_samples.txt'), 'w') as f:
      for s in result['eval']['samples']:
        f.write(s['prompt'] + s['completion'] + f"\n[gold {s['answer']}]\n\n")

  # Export (LoRA merged into the base) as a Hugging Face folder.
  if config.get('export_hf') and jax.process_index() == 0:
    hf.save_checkpoint(config.export_hf, model_cfg, jax.device_get(params))
    result['export_hf'] = config.export_hf
  return result


def evaluate(params, model_cfg, tokenizer, records, *, max_new_tokens: int,
             num_samples_shown: int = 5) -> dict[str, Any]:
  """Greedy pass@1 of records with 'answer' (answer in the last \\boxed{})."""
  return pass_at_k.evaluate(
      jax.device_get(params), model_cfg, tokenizer, records,
      lambda text, rec: synthetic.extract_boxed(text) == rec['answer'],
      max_new_tokens=max_new_tokens, temperature=0.0,
      num_samples_shown=num_samples_shown)


# Multi-stage and distillation SFT ---------------------------------------------
#
#   config.init_workdir   a jaxreason workdir (e.g. SFT stage 1) whose latest
#                         params start the run (not its optimizer or step).
#   config.data.filter    dict(kind='pass_rate', policy, n, lo, hi, ...):
#                         keep the train problems the policy solves in a
#                         share in [lo, hi] of n samples (`filter_train_records`).
#   config.data.generate  dict(num, task, seed, reflect_prob): with
#                         source='jsonl' and an empty path, write `num`
#                         synthetic teacher traces into the workdir first.
# All optional: without them a run is exactly what it was before.

FILTER_FILE = 'data_filter.json'


def with_generated_data(config: ml_collections.ConfigDict,
                        workdir: str) -> ml_collections.ConfigDict:
  """`data.generate`: a copy of config reading a JSONL it writes (see above).

  Only for source='jsonl' with an empty `data.path` and a `data.generate`
  field; any other config is returned as it is. The file is
  workdir/synthetic_traces.jsonl (rewritten identically on resume; on
  several hosts the workdir must be a shared local-style path).
  """
  data = config.data
  gen = data.get('generate')
  if data.get('source') != 'jsonl' or data.get('path') or gen is None:
    return config
  if not gen.get('num'):
    raise ValueError('data.path is empty: set --config.data.path to a JSONL '
                     'of teacher traces (data.prompt_key / completion_key '
                     'per line), or data.generate.num > 0 for synthetic ones')
  config = ml_collections.ConfigDict(config.to_dict())  # Resolved copy.
  path = os.path.join(workdir, 'synthetic_traces.jsonl')
  if jax.process_index() == 0:
    sources.write_synthetic_traces(
        path, gen['task'], int(gen['num']), seed=int(gen.get('seed', 0)),
        reflect_prob=float(gen.get('reflect_prob', 0.5)),
        prompt_key=data.get('prompt_key', 'prompt'),
        completion_key=data.get('completion_key', 'completion'))
  if jax.process_count() > 1:  # The others read it (a shared workdir).
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices('synthetic_traces')
  logging.info('Wrote %d synthetic teacher traces to %s', gen['num'], path)
  config.data.path = path
  return config


def params_from_workdir(workdir: str, model_cfg) -> Any:
  """The latest params of a jaxreason run (host copy), checked against model_cfg.

  A partial, params-only restore onto an explicit target
  (`sampling.policy.restore_params`), so a stage saved on one topology starts
  the next on another; `train.checkpoint.restore_params` would use the saved
  shardings and read the optimizer state as well.
  """
  saved_config = run_config.load_run_config(workdir)
  saved = run_config.model_config_from(saved_config.model, model_cfg.vocab_size)
  shapes = lambda c: jax.tree.map(
      lambda a: a.shape, jax.eval_shape(lambda k: random_params(c, k),
                                        jax.random.key(0)))
  if shapes(saved) != shapes(model_cfg):
    raise ValueError(f'init_workdir={workdir}: its model {saved} does not '
                     f'have the parameters of this run\'s model {model_cfg}')
  params = policy.restore_params(  # A LoRA run's adapters are merged.
      os.path.join(workdir, 'checkpoints'), model_cfg,
      lora_cfg=lora.config_from(saved_config.get('lora')))
  logging.info('Initialised params from %s', workdir)
  return params


def filter_train_records(config: ml_collections.ConfigDict,
                         records: list[dict], tokenizer,
                         workdir: str) -> list[dict]:
  """`config.data.filter`: the train records a difficulty filter keeps.

  kind='pass_rate' (`selection.filter_by_pass_rate`): sample `n` completions
  per problem from `policy` (a jaxreason workdir or Hugging Face folder;
  '' means config.init_workdir, the model this run starts from; both empty:
  a random `config.model`, for :debug only) and keep the problems whose pass
  rate under `reward` is in [lo, hi]. The kept indices and pass rates go to
  workdir/data_filter.json, which a resumed run reads back instead of
  sampling again (its data iterator's checkpoint indexes that list).
  """
  f = config.data.get('filter')
  if not f or not f.get('kind'):
    return records
  path = os.path.join(workdir, FILTER_FILE)
  if os.path.exists(path):
    with open(path) as fp:
      saved = json.load(fp)
    if saved['num_records'] == len(records):
      logging.info('data.filter: %d of %d records, from %s',
                   len(saved['kept']), len(records), path)
      return [records[i] for i in saved['kept']]
    logging.warning('%s is for %d records, not %d: filtering again', path,
                    saved['num_records'], len(records))
  if f['kind'] != 'pass_rate':
    raise ValueError(f"data.filter.kind={f['kind']!r}: expected 'pass_rate'")
  source = f.get('policy') or config.get('init_workdir')
  if source:
    model_cfg, params, _ = policy.load_policy(source, tokenizer=tokenizer)
  else:
    logging.warning('data.filter: no policy and no init_workdir: filtering '
                    'with a random model (only sensible for debugging)')
    model_cfg = run_config.model_config_from(config.model, tokenizer.vocab_size)
    params = random_params(model_cfg, jax.random.key(config.seed))
  reward_cfg = dict(f.get('reward') or {'kind': 'synthetic'})
  kept, rates = selection.filter_by_pass_rate(
      params, model_cfg, tokenizer,
      [r | {'_index': i} for i, r in enumerate(records)],
      task_rewards.make_reward_fn(reward_cfg, tokenizer), int(f['n']),
      float(f['lo']), float(f['hi']),
      max_new_tokens=int(f['max_new_tokens']),
      temperature=float(f.get('temperature', 1.0)),
      top_p=float(f.get('top_p', 1.0)), seed=config.seed,
      batch_prompts=int(f.get('batch_prompts', 16)),
      correct_threshold=float(reward_cfg.get('correct_threshold', 1.0)))
  if not kept:
    raise ValueError(f"data.filter: no problem has a pass rate in [{f['lo']}, "
                     f"{f['hi']}] (mean {rates.mean():.3f})")
  kept_idx = [r['_index'] for r in kept]
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path + '.tmp', 'w') as fp:
      json.dump({'num_records': len(records), 'policy': source or '',
                 'kept': kept_idx, 'pass_rates': rates.tolist()}, fp)
    os.replace(path + '.tmp', path)
  return [records[i] for i in kept_idx]
