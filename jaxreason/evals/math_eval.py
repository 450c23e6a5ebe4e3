r"""Math evaluation harness: N samples per problem, pass@k, maj@k, avg@k.

  python experiments/math_eval.py --config=configs/math_eval/math500.py \
      --workdir=runs/eval_math500 --config.policy=/ckpt/Qwen2.5-0.5B-Instruct

  result = math_eval.run(config, workdir)  # The same from a notebook.

For each problem the prompt (`prompts.build_prompt`, a chat template or raw
text) is encoded and prefilled once and N samples are decoded from it
(`Sampler.generate(n=N)`); a sample ends at EOS (with a chat prompt, also
at <|im_end|>), a stop string or max_new_tokens. Each sample's final answer is extracted
(`grader.extract_answer`, or the last \boxed{} only) and graded against the
reference answer (`grader.answers_match`, or exact string equality).

Metrics, at every n in 1, 2, 4, ..., N (and N), over problems:

  pass@n        the unbiased estimator 1 - C(N-c, n) / C(N, n) from all N
                samples (c correct; Chen et al., 2021).
  pass_first@n  whether one of the first n samples is correct: what a run
                of n samples would have reported.
  avg@n         the share of the first n samples that are correct.
  maj@n         the majority answer of the first n samples (answers grouped
                by the grader, `search.voting`; ties: the first class seen;
                no answer: wrong) is correct.

so a curve's point n uses the first n samples of the one run (pass@n
excepted, which uses all N to lower its variance). Each point also carries
the mean budget per problem of those n samples (`search.Budget`: generated
tokens, prompt tokens encoded once, forward FLOPs from the model's shapes).
MATH-500's levels and subjects get their own pass@1 / maj@N / avg@N.

Results go to workdir: results.json (everything, with the config),
results.md (tables), problems.jsonl (per problem: answers, grades, tokens,
and completions when `save_completions`), and the scaling curves
scaling_n.png / scaling_flops.png (`report.py`).

Samples that stop at max_new_tokens are graded like the others unless
`grading.grade_truncated` is False (then they have no answer); the share of
them is reported as `truncated`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from jaxreason.data import sources
from jaxreason.data import synthetic
from jaxreason.data.tokenizer import IM_END, Tokenizer
from jaxreason.evals import benchmarks
from jaxreason.evals import prompts
from jaxreason.evals import report
from jaxreason.evals.pass_at_k import pass_at_k_estimate, wilson_interval
from jaxreason.models.transformer import TransformerConfig, init_params
from jaxreason.rewards import grader
from jaxreason.sampling import Sampler
from jaxreason.sampling.policy import load_policy
from jaxreason.search.budget import Budget, forward_flops
from jaxreason.search.budget import non_embedding_params
from jaxreason.search import voting
from jaxreason.train import run_config

Params = Any
RESULTS_FILE = 'results.json'
PROBLEMS_FILE = 'problems.jsonl'


# Problems and the policy ------------------------------------------------------


def load_records(config: ml_collections.ConfigDict) -> list[dict]:
  """The problems of `config.benchmark`: a benchmark name or 'synthetic'.

  'synthetic': `config.num_problems` held-out problems of `config.task`
  (`sources.synthetic_splits`, the split no recipe trains on). Else the
  benchmark's records (`benchmarks.load`), the first `num_problems` if > 0.
  """
  num = int(config.get('num_problems', 0))
  if config.benchmark == 'synthetic':
    _, held_out = sources.synthetic_splits(dict(config.task), 0, num,
                                           int(config.get('data_seed', 0)))
    return [{'id': f'synthetic/{i}', 'problem': p.question,
             'answer': p.answer, 'num_steps': p.num_steps}
            for i, p in enumerate(held_out)]
  records = benchmarks.load(config.benchmark, config.get('data_dir') or None,
                            skip_malformed=bool(config.get('skip_malformed')))
  return records[:num] if num > 0 else records


def load_policy_or_random(config: ml_collections.ConfigDict
                          ) -> tuple[TransformerConfig, Params, Tokenizer]:
  """`config.policy` (HF folder or jaxreason workdir), else a random model."""
  if config.policy:
    model_cfg, params, tokenizer = load_policy(
        config.policy, dtype=config.get('dtype') or None)
    if tokenizer is None:
      raise ValueError(f'{config.policy}: no tokenizer; math_eval needs text')
    return model_cfg, params, tokenizer
  logging.warning('config.policy is empty: evaluating a random model')
  tokenizer = run_config.tokenizer_from_config(config.tokenizer)
  model_cfg = run_config.model_config_from(config.model, tokenizer.vocab_size)
  return model_cfg, init_params(model_cfg, jax.random.key(config.seed)), (
      tokenizer)


# Sampling and grading ---------------------------------------------------------


def extractor(how: str) -> Callable[[str], str | None]:
  """'robust': `grader.extract_answer`; 'boxed': the last \\boxed{} only."""
  if how == 'robust':
    return grader.extract_answer
  if how == 'boxed':
    return synthetic.extract_boxed
  raise ValueError(f"grading.extract={how!r}: expected 'robust' or 'boxed'")


def matcher(how: str) -> Callable[[str, str], bool]:
  """'grader': `grader.answers_match`; 'exact': equal after strip()."""
  if how == 'grader':
    return grader.answers_match
  if how == 'exact':
    return lambda a, b: a.strip() == b.strip()
  raise ValueError(f"grading.match={how!r}: expected 'grader' or 'exact'")


def grade_problem(texts: Sequence[str], finish: Sequence[str], gold: str,
                  grading: Mapping[str, Any]) -> dict[str, Any]:
  """Extracted answers, correctness and answer classes of one problem."""
  extract = extractor(grading.get('extract', 'robust'))
  match = matcher(grading.get('match', 'grader'))
  answers = []
  for text, reason in zip(texts, finish):
    if reason == 'length' and not grading.get('grade_truncated', True):
      answers.append(None)
    else:
      answers.append(extract(text))
  correct = [a is not None and match(a, gold) for a in answers]
  return {'extracted': answers, 'correct': correct,
          'classes': voting.answer_classes(answers, match)}


def problem_budget(model_cfg: TransformerConfig, prompt_tokens: int,
                   gen_tokens: Sequence[int]) -> Budget:
  """Tokens and FLOPs of one prefilled prompt and its samples.

  The prompt is encoded once whatever the number of samples; token t of a
  sequence attends to t + 1 positions.
  """
  p = int(prompt_tokens)
  flops = forward_flops(model_cfg, p, context=(p + 1) / 2)
  for g in gen_tokens:
    flops += forward_flops(model_cfg, int(g), context=p + (int(g) + 1) / 2)
  return Budget(policy_tokens=int(sum(gen_tokens)), prompt_tokens=p,
                policy_flops=flops)


def stop_ids(model_cfg: TransformerConfig, tokenizer: Tokenizer,
             chat: bool) -> tuple[int, ...]:
  """EOS ids: the tokenizer's and the model's, and '<|im_end|>' in a chat.

  A base model prompted with the chat template ends its turn with
  <|im_end|>, which need not be its EOS token.
  """
  ids = {tokenizer.eos_id, model_cfg.eos_token_id}
  if chat:
    ids.add(tokenizer.token_to_id(IM_END))
  return tuple(sorted(i for i in ids if i is not None))


def sample_problems(params: Params, model_cfg: TransformerConfig,
                    tokenizer: Tokenizer, records: Sequence[Mapping[str, Any]],
                    config: ml_collections.ConfigDict) -> list[dict]:
  """Samples and grades `config.n` completions per record.

  Returns one dict per problem with its id, answer, level / subject, prompt
  tokens, and per sample: generated tokens, finish reason, extracted
  answer, correctness, answer class (and text when `save_completions`).
  Problems whose prompt the tokenizer cannot encode raise, unless
  `config.unencodable == 'skip'` (they are logged and left out).
  """
  prompt_ids, kept = [], []
  for rec in records:
    text = prompts.build_prompt(rec['problem'], tokenizer, config.prompt)
    try:
      ids = prompts.encode_prompt(text, tokenizer)
    except ValueError as e:
      if config.get('unencodable', 'error') != 'skip':
        raise ValueError(f'problem {rec["id"]}: {e}') from e
      logging.warning('skipping problem %s: %s', rec['id'], e)
      continue
    prompt_ids.append(ids)
    kept.append(rec)
  if not kept:
    raise ValueError('no problem to evaluate')
  n, max_new = int(config.n), int(config.max_new_tokens)
  sampler = Sampler(model_cfg,
                    cache_size=max(map(len, prompt_ids)) + max_new,
                    tokenizer=tokenizer, eos_ids=stop_ids(
                        model_cfg, tokenizer, config.prompt.get('chat', True)),
                    stop_strings=tuple(config.get('stop_strings', ())))
  rng = jax.random.key(int(config.seed))
  per_batch = max(1, int(config.batch_prompts))
  out, start_time = [], time.time()
  for start in range(0, len(kept), per_batch):
    batch = prompt_ids[start:start + per_batch]
    samples = sampler.generate(
        params, batch, max_new_tokens=max_new, n=n,
        rng=jax.random.fold_in(rng, start),
        temperature=float(config.temperature), top_p=float(config.top_p))
    for rec, ids, comps in zip(kept[start:], batch, samples):
      texts = [c.text for c in comps]
      finish = [c.finish_reason for c in comps]
      row = {'id': rec['id'], 'answer': str(rec['answer']),
             'prompt_tokens': len(ids),
             'gen_tokens': [len(c.tokens) for c in comps], 'finish': finish,
             **grade_problem(texts, finish, str(rec['answer']),
                             config.grading)}
      for key in ('level', 'subject'):
        if rec.get(key) is not None:
          row[key] = rec[key]
      if config.get('save_completions', True):
        row['completions'] = texts
      out.append(row)
    logging.info('math_eval: %d / %d problems (%.0f s)', len(out), len(kept),
                 time.time() - start_time)
  return out


# Metrics ------------------------------------------------------------------


def curve_ns(n: int) -> list[int]:
  """1, 2, 4, ... up to n, and n itself."""
  ns = [1 << i for i in range(max(n, 1).bit_length()) if 1 << i <= n]
  return ns + ([n] if ns[-1] != n else [])


def _maj_correct(p: Mapping[str, Any], k: int) -> bool:
  i = voting.vote_from_classes(p['classes'][:k])
  return i is not None and bool(p['correct'][i])


def point(problems: Sequence[Mapping[str, Any]], k: int,
          model_cfg: TransformerConfig | None = None) -> dict[str, float]:
  """Metrics from the first k samples of each problem (pass@k: all N)."""
  num = len(problems)
  total = len(problems[0]['correct'])
  pass_k = [pass_at_k_estimate(total, sum(p['correct']), k) for p in problems]
  first = [any(p['correct'][:k]) for p in problems]
  avg = [float(np.mean(p['correct'][:k])) for p in problems]
  maj = [_maj_correct(p, k) for p in problems]
  out = {'n': k, 'pass': float(np.mean(pass_k)),
         'pass_first': float(np.mean(first)), 'avg': float(np.mean(avg)),
         'maj': float(np.mean(maj)),
         'maj_ci95': list(wilson_interval(sum(maj), num)),
         'avg_ci95': list(wilson_interval(sum(avg), num))}
  if model_cfg is not None:
    budgets = [problem_budget(model_cfg, p['prompt_tokens'],
                              p['gen_tokens'][:k]) for p in problems]
    out.update(
        tokens=float(np.mean([b.policy_tokens for b in budgets])),
        prompt_tokens=float(np.mean([b.prompt_tokens for b in budgets])),
        flops=float(np.mean([b.flops for b in budgets])))
  return out


def breakdown(problems: Sequence[Mapping[str, Any]], key: str
              ) -> dict[str, dict[str, float]]:
  """pass@1, avg@N, maj@N, pass@N per value of `key` ('level', 'subject')."""
  groups: dict[str, list] = {}
  for p in problems:
    if key in p:
      groups.setdefault(str(p[key]), []).append(p)
  out = {}
  # Levels in numeric order ('2' < '10'), names alphabetically.
  for value in sorted(groups, key=lambda v: (
      not v.isdigit(), int(v) if v.isdigit() else 0, v)):
    ps = groups[value]
    total = len(ps[0]['correct'])
    pt = point(ps, total)
    out[value] = {'num_problems': len(ps), 'pass@1': point(ps, 1)['pass'],
                  f'avg@{total}': pt['avg'], f'maj@{total}': pt['maj'],
                  f'pass@{total}': pt['pass']}
  return out


def summarize(problems: Sequence[Mapping[str, Any]],
              model_cfg: TransformerConfig) -> dict[str, Any]:
  """Curves, headline metrics, breakdowns and budgets of graded problems."""
  total = len(problems[0]['correct'])
  curve = [point(problems, k, model_cfg) for k in curve_ns(total)]
  budget_n = [problem_budget(model_cfg, p['prompt_tokens'], p['gen_tokens'])
              for p in problems]
  finish = [r for p in problems for r in p['finish']]
  metrics = {}
  for pt in curve:
    k = pt['n']
    metrics.update({f'pass@{k}': pt['pass'], f'maj@{k}': pt['maj'],
                    f'avg@{k}': pt['avg']})
  return {
      'num_problems': len(problems), 'n': total, 'metrics': metrics,
      'curve': curve,
      'by_level': breakdown(problems, 'level'),
      'by_subject': breakdown(problems, 'subject'),
      'budget_per_problem': {
          key: float(np.mean([b.as_dict()[key] for b in budget_n]))
          for key in ('policy_tokens', 'prompt_tokens', 'tokens', 'flops')},
      'truncated': float(np.mean([r == 'length' for r in finish])),
      'no_answer': float(np.mean([a is None for p in problems
                                  for a in p['extracted']])),
  }


# Entry point --------------------------------------------------------------


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Loads the policy and problems, samples, grades, writes the results."""
  os.makedirs(workdir, exist_ok=True)
  records = load_records(config)
  model_cfg, params, tokenizer = load_policy_or_random(config)
  logging.info('math_eval: %s, %d problems x %d samples, policy %s',
               config.benchmark, len(records), config.n,
               config.policy or '(random)')
  start = time.time()
  problems = sample_problems(params, model_cfg, tokenizer, records, config)
  result = summarize(problems, model_cfg)
  done = {p['id'] for p in problems}
  result.update(
      benchmark=config.benchmark, policy=config.policy or None,
      num_records=len(records), seconds=round(time.time() - start, 1),
      model={'params': model_cfg.num_params(),
             'non_embedding_params': non_embedding_params(model_cfg)},
      skipped_problems=[r['id'] for r in records if r['id'] not in done],
      example_prompt=prompts.build_prompt(
          next(r for r in records if r['id'] in done)['problem'], tokenizer,
          config.prompt),
      config=json.loads(config.to_json_best_effort()))
  with open(os.path.join(workdir, PROBLEMS_FILE), 'w') as f:
    for p in problems:
      f.write(json.dumps(p) + '\n')
  result['files'] = report.write(result, workdir)
  with open(os.path.join(workdir, RESULTS_FILE), 'w') as f:
    json.dump(result, f, indent=1)
  return result

