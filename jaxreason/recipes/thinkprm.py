"""ThinkPRM: synthesise verification chains, fine-tune on them, evaluate.

  from jaxreason.recipes import thinkprm
  from configs.thinkprm import synthetic
  result = thinkprm.train(synthetic.get_config('debug'), '/tmp/thinkprm')

Reads top to bottom:

1. Labels. `label_fraction` of the step labels a discriminative PRM would
   use (`prm_num_solutions` solutions): that many training problems (none
   held out), each with a flawed or correct solution (or a prefix of one)
   whose step labels come from the synthetic checker.
2. Chains. The teacher writes `num_chains` verification chains per solution;
   `thinkprm_data.synthesize` keeps those whose verdicts match the labels up
   to and including the first wrong step and that fit `max_chain_tokens`.
   Written to workdir/thinkprm_chains.jsonl, the keep rate and counts to
   workdir/thinkprm_synthesis.json. Teachers: 'noisy_arithmetic' (a
   programmatic verifier that slips with probability `slip_prob`, standing
   in for the paper's QwQ-32B on this CPU task) or 'policy' (chains sampled
   from `teacher.policy`, a workdir or HF folder).
3. SFT on the kept chains with `recipes.sft.train` (source 'jsonl'),
   starting from `init_workdir` (e.g. the quickstart SFT policy) if set.
4. Evaluation on the discriminative PRM's held-out ProcessBench-format sets
   (`processbench.synthetic_dev_test`, questions from `sources.is_held_out`;
   steps include the boxed answer), judged by the trained ThinkPRM (greedy,
   and the `eval.scaling` variants) and, as the baseline, by the starting
   policy as a zero-shot LLM judge: per-step verdict accuracy, first-error
   accuracy and F1 on 'test', and the PRM's protocol on 'dev' and 'test',
   in workdir/thinkprm_eval.json.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np

from jaxreason.data import sources
from jaxreason.evals import processbench
from jaxreason.evals.verifier_accuracy import verifier_accuracy
from jaxreason.models.transformer import init_params as random_params
from jaxreason.recipes import sft
from jaxreason.sampling import policy
from jaxreason.sampling.sampler import Sampler
from jaxreason.train import run_config
from jaxreason.verifiers import thinkprm_data
from jaxreason.verifiers.judge import LLMJudge
from jaxreason.verifiers.thinkprm import ThinkPRM

CHAINS_FILE = 'thinkprm_chains.jsonl'
SYNTHESIS_FILE = 'thinkprm_synthesis.json'
EVAL_FILE = 'thinkprm_eval.json'


def num_label_solutions(t: ml_collections.ConfigDict) -> int:
  """Solutions whose labels ThinkPRM may use: label_fraction of the PRM's."""
  return max(1, int(math.ceil(t.label_fraction * t.prm_num_solutions)))


def make_teacher(config: ml_collections.ConfigDict, problems,
                 tokenizer) -> thinkprm_data.Teacher:
  teacher = config.teacher
  if teacher.kind == 'noisy_arithmetic':
    return thinkprm_data.noisy_arithmetic_teacher(
        {p.question: p for p in problems}, slip_prob=teacher.slip_prob)
  if teacher.kind == 'policy':
    model_cfg, params, tok = policy.load_policy(teacher.policy)
    sampler = Sampler(model_cfg, cache_size=teacher.cache_size,
                      tokenizer=tok, stop_strings=(thinkprm_data.QUESTION,))
    return thinkprm_data.sampler_teacher(
        sampler, params, tok, max_new_tokens=teacher.max_new_tokens,
        temperature=teacher.temperature)
  raise ValueError(f"teacher.kind={teacher.kind!r}: expected "
                   "'noisy_arithmetic' or 'policy'")


def synthesize_chains(config: ml_collections.ConfigDict, tokenizer,
                      workdir: str) -> tuple[str, dict[str, Any]]:
  """Steps 1 and 2: writes the kept chains as SFT records; (path, stats)."""
  t = config.thinkprm
  problems = sources.train_problems(config.data.task, num_label_solutions(t),
                                    config.data.seed)
  rng = np.random.default_rng([config.seed, 7])
  solutions = thinkprm_data.labelled_solutions(
      problems, rng, flawed_prob=t.flawed_prob, prefix_prob=t.prefix_prob,
      error_step_decay=t.get('error_step_decay', 1.0))
  records, stats = thinkprm_data.synthesize(
      solutions, make_teacher(config, problems, tokenizer),
      num_chains=t.num_chains, max_length=t.max_chain_tokens,
      length_fn=lambda s: len(tokenizer.encode(s)), seed=config.seed)
  if not records:
    raise ValueError(f'the filter kept no chain: {stats}')
  steps = config.data.task.num_steps  # An int or a mix of chain lengths.
  steps = steps if isinstance(steps, int) else float(np.mean(steps))
  stats['prm_step_labels'] = int(t.prm_num_solutions * steps)
  stats['label_fraction_used'] = stats['step_labels'] / stats[
      'prm_step_labels']
  path = os.path.join(workdir, CHAINS_FILE)
  if jax.process_index() == 0:
    thinkprm_data.write_jsonl(path, records)
    with open(os.path.join(workdir, SYNTHESIS_FILE), 'w') as f:
      json.dump(stats, f, indent=1)
  logging.info('ThinkPRM synthesis: kept %d of %d chains (%.3f) for %d '
               'solutions, %d step labels', stats['kept'], stats['chains'],
               stats['keep_rate'], stats['solutions'], stats['step_labels'])
  return path, stats


def sft_config(config: ml_collections.ConfigDict,
               path: str) -> ml_collections.ConfigDict:
  """The SFT run on the chains: config with data read from `path`."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.data = dict(source='jsonl', path=path, num_eval=0)
  return c


def eval_subsets(config: ml_collections.ConfigDict) -> dict[str, list[dict]]:
  """The discriminative PRM's held-out ProcessBench-format sets (same task,
  `eval.num_solutions` records each in 'dev' and 'test', `eval.seed`)."""
  e = config.eval
  return processbench.synthetic_dev_test(config.data.task,
                                         int(e.num_solutions),
                                         seed=int(e.get('seed', 0)))


def step_labels_of(record: dict) -> tuple[bool, ...]:
  """Per-step labels of a ProcessBench record: right before `label`."""
  first = int(record['label'])
  return tuple(first < 0 or i < first for i in range(len(record['steps'])))


def evaluate(verifier, subsets: dict[str, list[dict]]) -> dict[str, Any]:
  """Step / first-error metrics on 'test', and the PRM's ProcessBench
  protocol (a score threshold picked on 'dev'; a verifier's own boxed first
  error wins over it) on both subsets."""
  judgements = {n: processbench.judge_records(verifier, r)
                for n, r in subsets.items()}
  test = subsets['test']
  metrics = verifier_accuracy(judgements['test'],
                              [step_labels_of(r) for r in test])
  pb = processbench.threshold_protocol(
      judgements, {n: processbench.labels_of(r) for n, r in subsets.items()},
      pick_on='dev')
  metrics['processbench'] = {
      'threshold': pb['threshold'], 'average_f1': pb['average_f1'],
      **{n: {k: v for k, v in sc.items() if isinstance(v, (int, float))}
         for n, sc in pb['subsets'].items()}}
  metrics['examples'] = [
      {'prompt': thinkprm_data.verifier_prompt(r['problem'], r['steps']),
       'chain': j.info.get('chains', [''])[0], 'gold_first_error':
       r['label'], 'first_error': j.first_error}
      for r, j in zip(test[:3], judgements['test'][:3])]
  return metrics


def _verifier_kwargs(e: ml_collections.ConfigDict, **override) -> dict:
  kw = dict(num_chains=e.num_chains, num_rounds=e.num_rounds,
            max_chain_tokens=e.max_chain_tokens, token_budget=e.token_budget
            or None, temperature=e.temperature, cache_size=e.cache_size,
            batch_size=e.batch_size, seed=0)
  kw.update(override)
  return kw


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Synthesis, SFT and evaluation; returns SFT's result plus both."""
  os.makedirs(workdir, exist_ok=True)
  tokenizer = run_config.tokenizer_from_config(config.tokenizer)
  path, stats = synthesize_chains(config, tokenizer, workdir)
  result = sft.train(sft_config(config, path), workdir)
  result['synthesis'] = stats

  e = config.eval
  if not e.num_solutions:
    return result
  subsets = eval_subsets(config)
  model_cfg, params, tok = policy.load_policy(workdir, tokenizer=tokenizer)
  evals = {'thinkprm': evaluate(
      ThinkPRM(model_cfg, params, tok, **_verifier_kwargs(e)), subsets)}
  for name, k, r in e.scaling:  # Test-time scaling.
    evals[f'thinkprm_{name}'] = evaluate(ThinkPRM(
        model_cfg, params, tok, **_verifier_kwargs(
            e, num_chains=k, num_rounds=r, temperature=e.scaling_temperature)),
                                         subsets)
  if e.baseline:  # The starting policy, zero-shot, same prompt and scoring.
    if config.get('init_workdir'):
      base_params = sft.params_from_workdir(config.init_workdir, model_cfg)
    else:
      base_params = random_params(model_cfg, jax.random.key(config.seed))
    evals['llm_judge'] = evaluate(
        LLMJudge(model_cfg, base_params, tok, **_verifier_kwargs(e)),
        subsets)
  for name, m in evals.items():
    logging.info('%s: step acc %.3f, first-error acc %.3f, F1 %.3f', name,
                 m['step_accuracy'], m['first_error_accuracy'], m['f1'])
  if jax.process_index() == 0:
    with open(os.path.join(workdir, EVAL_FILE), 'w') as f:
      json.dump(evals, f, indent=1)
  result['eval'] = evals
  return result
