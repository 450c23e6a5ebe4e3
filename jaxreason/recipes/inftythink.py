"""InftyThink on the synthetic task: SFT on segment instances, iterative eval.

  from jaxreason.recipes import inftythink
  from configs.inftythink import synthetic
  result = inftythink.train(synthetic.get_config('debug'), '/tmp/infty')

Reads top to bottom: problems (the synthetic task's train / held-out split)
-> training records written to workdir/train.jsonl (`config.mode`:
'inftythink', the segment instances of `reasoning.inftythink`; or
'monolithic', the whole trace in one record) -> the SFT trainer
(`recipes.sft.train`: packing, checkpoints, resume, metrics.jsonl) ->
the trained params read back from the workdir -> held-out evaluation, written
to workdir/eval.json:

* 'inftythink': `run_inftythink` with a cache of `eval.cache_size` tokens per
  iteration, at most `eval.max_iterations` iterations;
* 'monolithic': one greedy decode of the whole trace, once per cache size in
  `eval.cache_sizes` (a cache shorter than prompt + trace truncates).

Both report accuracy, the peak tokens in context per problem and the KV-cache
bytes they occupy (`kv_bytes_per_token` x tokens), and the cache allocated.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np

from jaxreason.data import sources, synthetic
from jaxreason.reasoning import inftythink as infty
from jaxreason.recipes import sft
from jaxreason.sampling import policy
from jaxreason.sampling.sampler import Sampler
from jaxreason.train import run_config

MODES = ('inftythink', 'monolithic')
EVAL_FILE = 'eval.json'
TRAIN_FILE = 'train.jsonl'


def problems(config: ml_collections.ConfigDict) -> tuple[list, list]:
  """(train, held-out) synthetic problems of `config.task` / `config.data`."""
  return sources.synthetic_splits(
      config.task, int(config.data.num_train), int(config.data.num_eval),
      int(config.data.seed))


def training_records(config: ml_collections.ConfigDict, train: list,
                     tokenizer) -> list[dict[str, str]]:
  """The SFT records of `config.mode` (checked to fit `config.seq_len`)."""
  if config.mode not in MODES:
    raise ValueError(f'config.mode={config.mode!r}: expected one of {MODES}')
  count = lambda s: len(tokenizer.encode(s))
  if config.mode == 'inftythink':
    records = [inst.record() for p in train
               for inst in infty.synthetic_instances(p, count, config.eta)]
  else:
    records = [infty.synthetic_monolithic(p) for p in train]
  longest = max(count(r['prompt']) + count(r['completion']) + 2
                for r in records)  # + BOS and EOS.
  if longest > config.seq_len:
    raise ValueError(
        f'config.seq_len={config.seq_len} is shorter than the longest '
        f'{config.mode} training record ({longest} tokens); raise seq_len '
        '(or lower eta / task.num_steps)')
  return records


def _write_jsonl(path: str, records: list[dict]) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + '.tmp', 'w') as f:
    for r in records:
      f.write(json.dumps(r) + '\n')
  os.replace(path + '.tmp', path)


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the model of `config.mode`, then evaluates it on held-out problems."""
  tokenizer = run_config.tokenizer_from_config(config.tokenizer)
  train_problems, eval_problems = problems(config)
  records = training_records(config, train_problems, tokenizer)
  path = os.path.join(workdir, TRAIN_FILE)
  if jax.process_index() == 0:
    _write_jsonl(path, records)
  logging.info('%s: %d training records from %d problems', config.mode,
               len(records), len(train_problems))

  sft_config = ml_collections.ConfigDict(config.to_dict())
  sft_config.data = dict(source='jsonl', path=path, num_eval=0)
  sft_config.eval_max_new_tokens = 0  # Evaluated below, in this format.
  start = time.time()
  result = sft.train(sft_config, workdir)
  result['num_records'] = len(records)
  result['train_seconds'] = time.time() - start  # This call's (if resumed).

  if eval_problems:
    model_cfg, params, _ = policy.load_policy(workdir, tokenizer=tokenizer)
    result['eval'] = evaluate(config, model_cfg, params, tokenizer,
                              eval_problems)
    result['eval'] |= {'train_seconds': result['train_seconds'],
                       'num_records': len(records)}
    if jax.process_index() == 0:
      with open(os.path.join(workdir, EVAL_FILE), 'w') as f:
        json.dump(result['eval'], f, indent=1)
  return result


def evaluate(config: ml_collections.ConfigDict, model_cfg, params, tokenizer,
             eval_problems: list) -> dict[str, Any]:
  """Held-out accuracy and memory of `config.mode`'s decoding protocol."""
  questions = [infty.synthetic_question(p) for p in eval_problems]
  kv = infty.kv_bytes_per_token(model_cfg)
  ev = config.eval
  base = {'mode': config.mode, 'num_problems': len(eval_problems),
          'num_steps': config.task.num_steps, 'kv_bytes_per_token': kv,
          'train_seq_len': config.seq_len}
  if config.mode == 'inftythink':
    sampler = Sampler(model_cfg, cache_size=ev.cache_size,
                      tokenizer=tokenizer, stop_strings=(infty.SUMMARY[1],),
                      block_size=ev.cache_size)
    turns = infty.SamplerTurns(sampler, params,
                               max_new_tokens=ev.max_new_tokens,
                               batch_size=ev.batch_size)
    trajs = infty.run_inftythink(turns, questions,
                                 max_iterations=ev.max_iterations)
    rows = [_row(p, t.answer, t.peak_context, t.generated_tokens,
                 status=t.status, iterations=len(t.turns))
            for p, t in zip(eval_problems, trajs)]
    out = base | {'eta': config.eta, 'eval': _summary(rows, kv, sampler)}
    out['eval']['status'] = {s: sum(r['status'] == s for r in rows)
                             for s in ('final', 'malformed', 'max_iterations')}
    out['eval']['mean_iterations'] = float(np.mean(
        [r['iterations'] for r in rows]))
    out['per_problem'] = rows
    out['samples'] = [{'question': t.question, 'turns': [u.text for u in
                                                         t.turns]}
                      for t in trajs[:ev.num_samples_shown]]
    logging.info('InftyThink: accuracy %.3f, peak context %.1f tokens',
                 out['eval']['accuracy'], out['eval']['peak_context_mean'])
    return out
  out = base | {'eval': {}}
  for size in ev.cache_sizes:
    rows, samples = _monolithic(model_cfg, params, tokenizer, eval_problems,
                                questions, int(size), ev.batch_size)
    sampler_size = _allocated(model_cfg, int(size))
    out['eval'][str(size)] = _summary(rows, kv, sampler_size) | {
        'truncated': sum(r['status'] == 'length' for r in rows),
        'samples': samples[:ev.num_samples_shown]}
    logging.info('Monolithic, cache %d: accuracy %.3f, truncated %d', size,
                 out['eval'][str(size)]['accuracy'],
                 out['eval'][str(size)]['truncated'])
  return out


def _allocated(model_cfg, size: int) -> Sampler:
  return Sampler(model_cfg, cache_size=size, block_size=size)


def _monolithic(model_cfg, params, tokenizer, eval_problems, questions,
                cache_size: int, batch_size: int):
  """Greedy whole-trace decoding with a cache of `cache_size` tokens."""
  sampler = Sampler(model_cfg, cache_size=cache_size, tokenizer=tokenizer,
                    block_size=cache_size)
  prompts = [tokenizer.encode(infty.format_prompt(q), add_bos=True)
             for q in questions]
  rows, samples = [], []
  for start in range(0, len(prompts), batch_size):
    chunk = prompts[start:start + batch_size]
    outs = sampler.generate(params, chunk, temperature=0.0,
                            max_new_tokens=cache_size - min(map(len, chunk)))
    for j, (prompt, (c,)) in enumerate(zip(chunk, outs)):
      kind, final = infty.parse_turn(c.text)
      answer = synthetic.extract_boxed(final) if kind == 'final' else None
      p = eval_problems[start + j]
      rows.append(_row(p, answer, len(prompt) + len(c.tokens), len(c.tokens),
                       status=c.finish_reason))
      samples.append({'question': questions[start + j], 'text': c.text})
  return rows, samples


def _row(problem, answer, peak, generated, **extra) -> dict[str, Any]:
  return {'answer': problem.answer, 'predicted': answer,
          'correct': answer is not None and answer == problem.answer,
          'peak_context': int(peak), 'generated_tokens': int(generated),
          **extra}


def _summary(rows: list[dict], kv: int, sampler: Sampler) -> dict[str, Any]:
  peaks = np.asarray([r['peak_context'] for r in rows])
  return {
      'accuracy': float(np.mean([r['correct'] for r in rows])),
      'peak_context_mean': float(peaks.mean()),
      'peak_context_max': int(peaks.max()),
      'peak_kv_bytes_mean': float(peaks.mean() * kv),
      'peak_kv_bytes_max': int(peaks.max() * kv),
      'generated_tokens_mean': float(np.mean([r['generated_tokens']
                                              for r in rows])),
      'cache_size': sampler.cache_size,
      'cache_bytes_allocated_per_row': sampler.cache_size * kv,
  }
