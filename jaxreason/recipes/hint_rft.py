r"""Hint-RFT (START): hinted trajectories that beat plain ones, SFT, then RFT.

  from jaxreason.recipes import hint_rft
  from configs.hint_rft import synthetic
  result = hint_rft.train(synthetic.get_config('debug'), '/tmp/hint_rft')

Reads top to bottom:
1. the policy (`config.init_workdir`, a jaxreason workdir such as the tool
   model of configs/tir; empty: a random `config.model`, for :debug);
2. plain and hinted inference (`reasoning.tir.run`, the python tool on,
   `config.hints` only in the hinted run) on `config.data.num_problems`
   training problems, `config.n` samples each;
3. keep (`config.filter.keep`): 'hint_wins' -- sample j of a problem where
   the hinted run is right and the plain run wrong (START's rule);
   'hinted_correct'; or 'all' (:debug, where a random model is never
   right); then drop repetitive texts (word n-gram repetition rate above
   `filter.max_repetition`) and exact duplicates;
4. write them as SFT data (workdir/data/hint_rft.jsonl; tool output blocks
   masked from the loss) and fine-tune the policy on them with
   `recipes/sft.py` in `workdir`;
5. rejection sampling from the fine-tuned model (`config.rft`): n samples
   per fresh problem, keep the right, non-repetitive, distinct ones
   (workdir/data/rft.jsonl) for the next round.

Counts and accuracies go to workdir/hint_rft.json.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from absl import logging
import jax
import ml_collections

from jaxreason.data import sources
from jaxreason.models.transformer import init_params as random_params
from jaxreason.reasoning import hints as hints_lib
from jaxreason.reasoning import tir
from jaxreason.reasoning import tir_data
from jaxreason.recipes import sft
from jaxreason.recipes import tir as tir_recipe
from jaxreason.sampling import policy
from jaxreason.train import run_config

SUMMARY_FILE = 'hint_rft.json'
KEEP_RULES = ('hint_wins', 'hinted_correct', 'all')


def select(plain: Sequence[tir.Trajectory], hinted: Sequence[tir.Trajectory],
           answers: Sequence[str], *, keep: str, ngram: int,
           max_repetition: float) -> tuple[list[int], dict[str, int]]:
  """Indices of hinted trajectories to train on, and what each filter did."""
  if keep not in KEEP_RULES:
    raise ValueError(f'filter.keep={keep!r}: expected one of {KEEP_RULES}')
  if not len(plain) == len(hinted) == len(answers):
    raise ValueError(f'{len(plain)} plain, {len(hinted)} hinted runs for '
                     f'{len(answers)} answers')
  counts = {'candidates': len(hinted), 'kept_rule': 0, 'repetitive': 0,
            'duplicates': 0}
  chosen = []
  for i, (p, h, a) in enumerate(zip(plain, hinted, answers)):
    right = tir_recipe.is_correct(h, a)
    if keep == 'hint_wins' and not (right and not tir_recipe.is_correct(p, a)):
      continue
    if keep == 'hinted_correct' and not right:
      continue
    counts['kept_rule'] += 1
    if hints_lib.is_repetitive(h.text, n=ngram, max_rate=max_repetition):
      counts['repetitive'] += 1
      continue
    chosen.append(i)
  dup = hints_lib.first_duplicates([hinted[i].prompt + hinted[i].text
                                    for i in chosen])
  counts['duplicates'] = sum(dup)
  chosen = [i for i, d in zip(chosen, dup) if not d]
  counts['kept'] = len(chosen)
  return chosen, counts


def sft_rows(trajs: Sequence[tir.Trajectory], answers: Sequence[str],
             index: Sequence[int]) -> list[dict[str, str]]:
  return [{'prompt': trajs[i].prompt, 'completion': trajs[i].text,
           'answer': answers[i]} for i in index]


def _policy(config: ml_collections.ConfigDict):
  if config.init_workdir:
    return policy.load_policy(config.init_workdir)
  logging.warning('hint_rft: no init_workdir: a random policy (debug only)')
  tok = run_config.tokenizer_from_config(config.tokenizer)
  model_cfg = run_config.model_config_from(config.model, tok.vocab_size)
  return model_cfg, random_params(model_cfg, jax.random.key(config.seed)), tok


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Hint-RFT round: see the module docstring."""
  problems = sources.train_problems(config.task, int(config.data.num_problems),
                                    int(config.data.seed))
  n = int(config.n)
  style = config.get('prompt', 'words')
  prompts = [tir_data.prompt(p, style) for p in problems for _ in range(n)]
  answers = [p.answer for p in problems for _ in range(n)]
  kw = dict(cache_size=int(config.cache_size),
            batch_size=int(config.batch_prompts),
            temperature=float(config.temperature), seed=int(config.seed))
  plain_cfg = tir_recipe.loop_config(config.tools, None, config.max_new_tokens)
  hinted_cfg = tir_recipe.loop_config(config.tools, config.hints,
                                      config.max_new_tokens)
  if not hinted_cfg.hints.enabled:
    raise ValueError('hints: no hint would be inserted (set hints.stop_hints '
                     'or hints.words + word_hints, and max_hints > 0)')

  # 1-2. Plain and hinted inference with the initial policy.
  model_cfg, params, tok = _policy(config)
  plain, _ = tir_recipe.run_loop(model_cfg, params, tok, prompts, plain_cfg,
                                 **kw)
  hinted, _ = tir_recipe.run_loop(model_cfg, params, tok, prompts,
                                  hinted_cfg, **kw)
  summary = {'plain': tir_recipe.score(plain, answers),
             'hinted': tir_recipe.score(hinted, answers)}

  # 3-4. Select, write, fine-tune.
  f = config.filter
  index, counts = select(plain, hinted, answers, keep=f.keep, ngram=f.ngram,
                         max_repetition=f.max_repetition)
  summary['selection'] = counts
  logging.info('Hint-RFT selection: %s', counts)
  if not index:
    raise ValueError(f'hint_rft: no trajectory passed filter.keep={f.keep!r} '
                     f'({counts}); plain accuracy '
                     f"{summary['plain']['accuracy']:.3f}, hinted "
                     f"{summary['hinted']['accuracy']:.3f}")
  path = tir_data.write_jsonl(os.path.join(workdir, 'data', 'hint_rft.jsonl'),
                              sft_rows(hinted, answers, index))
  result = sft.train(tir_recipe.sft_config(
      config, path, masked_blocks=[tir.OUTPUT_BLOCK]), workdir)

  # 5. Rejection sampling from the fine-tuned model.
  r = config.rft
  fresh = sources.train_problems(config.task, int(r.num_problems),
                                 int(config.data.seed) + 1)
  rft_prompts = [tir_data.prompt(p, style) for p in fresh
                 for _ in range(int(r.n))]
  rft_answers = [p.answer for p in fresh for _ in range(int(r.n))]
  model_cfg, params, tok = policy.load_policy(workdir)
  rft_cfg = tir_recipe.loop_config(
      config.tools, config.hints if r.hints else None, config.max_new_tokens)
  samples, _ = tir_recipe.run_loop(
      model_cfg, params, tok, rft_prompts, rft_cfg,
      **dict(kw, temperature=float(r.temperature)))
  rft_index, rft_counts = select(samples, samples, rft_answers,
                                 keep='hinted_correct', ngram=f.ngram,
                                 max_repetition=f.max_repetition)
  rft_path = tir_data.write_jsonl(os.path.join(workdir, 'data', 'rft.jsonl'),
                                  sft_rows(samples, rft_answers, rft_index))
  summary['fine_tuned_samples'] = tir_recipe.score(samples, rft_answers)
  summary['rft_selection'] = rft_counts
  summary['files'] = {'hint_rft': path, 'rft': rft_path}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, SUMMARY_FILE), 'w') as fp:
      json.dump(summary, fp, indent=1)
  result['eval'] = summary
  return result
