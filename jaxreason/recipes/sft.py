"""Supervised fine-tuning: masked next-token loss on completions, packed.

  from jaxreason.recipes import sft
  from configs.sft import synthetic
  result = sft.train(synthetic.get_config('debug'), '/tmp/sft')

Reads top to bottom: mesh -> tokenizer and data -> model and sharded state
(resumed if the workdir has a checkpoint) -> jitted step -> loop -> eval.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

from jaxreason.data import pipeline, sources
from jaxreason.data import synthetic
from jaxreason.evals import pass_at_k
from jaxreason.losses.sft import sft_loss
from jaxreason.models import hf
from jaxreason.models.transformer import Transformer
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train import loop, optim, plots
from jaxreason.train.state import abstract_train_state
from jaxreason.train.step import LossFn, batch_sharding, make_train_step


def make_loss_fn(model: Transformer) -> LossFn:
  """`loss_fn(params, batch, rng, frozen)`: masked next-token loss.

  `batch` holds int32 [B, T] 'tokens', 'positions', 'segment_ids' and
  'loss_mask' (see data/pipeline.py); rng and frozen are unused.
  """

  def loss_fn(params, batch, rng, frozen):
    del rng, frozen
    logits = model.apply({'params': params}, batch['tokens'],
                         batch['positions'], batch['segment_ids'])
    return sft_loss(logits, batch['tokens'], batch['segment_ids'],
                    batch['loss_mask'])

  return loss_fn


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains; returns final metrics and (for tasks with answers) eval results."""
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = rules_lib.rules_from_config(config.get('sharding_rules'))

  # Data.
  tokenizer = loop.tokenizer_from_config(config.tokenizer)
  loop.save_run_config(workdir, config, tokenizer)  # For load_policy(workdir).
  train_records, eval_records = sources.sft_records(config.data)
  local_batch = config.batch_size // jax.process_count()
  dataset = pipeline.sft_dataset(
      train_records, tokenizer, seq_len=config.seq_len,
      batch_size=local_batch, seed=config.seed, pack=config.pack)
  data_iter = iter(dataset)

  # Model and state.
  model_cfg = loop.model_config_from(config.model, tokenizer.vocab_size)
  model = Transformer(model_cfg)
  logging.info('Model: %s (%.2fM parameters)', model_cfg,
               model_cfg.num_params() / 1e6)
  tx_factory = lambda mask: optim.make_optimizer(config.optim, mask)[0]
  schedule = optim.make_schedule(config.optim)
  dummy = jnp.zeros((1, 1), jnp.int32)
  init_params = lambda rng: model.init(rng, dummy)['params']
  rng = jax.random.PRNGKey(config.seed)
  abstract, shardings, init = abstract_train_state(
      init_params, tx_factory, rng, mesh, rules)

  def fresh_state():
    state = jax.jit(init, out_shardings=shardings)(rng)
    if config.get('init_checkpoint'):  # Start from pretrained HF weights.
      _, params = hf.load_checkpoint(config.init_checkpoint,
                                     dtype=model_cfg.dtype,
                                     param_dtype=model_cfg.param_dtype)
      state = state.replace(params=jax.device_put(params, shardings.params))
    return state

  run = loop.RunContext(workdir, config.total_steps,
                        save_every=config.checkpoint_every,
                        log_every=config.log_every)
  state, start = run.restore_or_init(abstract, fresh_state, data_iter)

  # Step.
  train_step = make_train_step(make_loss_fn(model), shardings, mesh,
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

  # Evaluation: greedy accuracy on held-out problems with known answers.
  if eval_records and config.get('eval_max_new_tokens'):
    result['eval'] = evaluate(state.params, model_cfg, tokenizer, eval_records,
                              max_new_tokens=config.eval_max_new_tokens)
    logging.info('Held-out greedy accuracy: %.3f (%d problems)',
                 result['eval']['accuracy'], result['eval']['num_problems'])
    with open(os.path.join(workdir, 'eval_samples.txt'), 'w') as f:
      for s in result['eval']['samples']:
        f.write(s['prompt'] + s['completion'] + f"\n[gold {s['answer']}]\n\n")
  return result


def evaluate(params, model_cfg, tokenizer, records, *, max_new_tokens: int,
             num_samples_shown: int = 5) -> dict[str, Any]:
  """Greedy pass@1 of records with 'answer' (answer in the last \\boxed{})."""
  return pass_at_k.evaluate(
      jax.device_get(params), model_cfg, tokenizer, records,
      lambda text, rec: synthetic.extract_boxed(text) == rec['answer'],
      max_new_tokens=max_new_tokens, temperature=0.0,
      num_samples_shown=num_samples_shown)
