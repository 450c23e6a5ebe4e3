r"""Tool use on the synthetic task: SFT on python-tool solutions, then TIR eval.

  from jaxreason.recipes import tir
  from configs.tir import synthetic
  result = tir.train(synthetic.get_config('debug'), '/tmp/tir')

Reads top to bottom: problems with large numbers (`config.task`, asked in
the `config.prompt` style, `tir_data.prompt`) -> tool solutions (ending
with the output block, or with the answer boxed too: `config.boxed`) and
the matched step-by-step solutions as JSONL -> SFT of the tool
model in `workdir` (output blocks masked from the loss) and of the no-tool
model in `workdir/no_tool` (`recipes/sft.py`, the same model and steps) ->
held-out accuracy of the tool model with the sandbox (`reasoning.tir.run`),
of the same model with the tool switched off (it must make up the output),
and of the no-tool model -> `workdir/summary.json`.
"""

from __future__ import annotations

import collections
import json
import os
from typing import Any, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from jaxreason.data import sources, synthetic
from jaxreason.reasoning import hints as hints_lib
from jaxreason.reasoning import tir
from jaxreason.reasoning import tir_data
from jaxreason.recipes import sft
from jaxreason.sampling import policy

SUMMARY_FILE = 'summary.json'
NO_TOOL_DIR = 'no_tool'


def sft_config(config: ml_collections.ConfigDict, path: str, *,
               masked_blocks: Sequence[tuple[str, str]] = ()
               ) -> ml_collections.ConfigDict:
  """`config` as an SFT config on the JSONL at `path` (no SFT eval)."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.data = dict(source='jsonl', path=path, num_eval=0,
                masked_blocks=tuple(tuple(b) for b in masked_blocks))
  c.eval_max_new_tokens = 0
  return c


def loop_config(tools: Any, hints: Any, max_new_tokens: int) -> tir.LoopConfig:
  return tir.LoopConfig(max_new_tokens=int(max_new_tokens),
                        tools=tir.ToolConfig(**dict(tools)),
                        hints=hints_lib.hint_config(hints))


def run_loop(model_cfg, params, tokenizer, prompts: Sequence[str],
             cfg: tir.LoopConfig, *, cache_size: int, batch_size: int,
             temperature: float = 0.0, seed: int = 0,
             executor: tir.Executor | None = None
             ) -> tuple[list[tir.Trajectory], dict[str, int]]:
  """`tir.run` over prompts in batches; (trajectories, SamplerLM stats)."""
  lm = tir.SamplerLM(model_cfg, params, tokenizer, cache_size=cache_size,
                     stop_strings=tir.loop_stop_strings(cfg.tools, cfg.hints),
                     temperature=temperature, seed=seed)
  out = []
  for i in range(0, len(prompts), batch_size):
    out += tir.run(lm, prompts[i:i + batch_size], cfg, executor)
  return out, dict(lm.stats)


def is_correct(traj: tir.Trajectory, answer: str) -> bool:
  """The boxed answer, else the program's last output, equals `answer`."""
  return tir_data.final_answer(traj.text) == answer


def score(trajs: Sequence[tir.Trajectory],
          answers: Sequence[str]) -> dict[str, Any]:
  """Accuracy and tool / token statistics of trajectories."""
  correct = [is_correct(t, a) for t, a in zip(trajs, answers)]
  statuses = collections.Counter(s for t in trajs for s in t.statuses)
  n = max(len(trajs), 1)
  return {
      'accuracy': float(np.mean(correct)) if trajs else 0.0,
      'num_problems': len(trajs),
      'mean_calls': sum(t.num_calls for t in trajs) / n,
      'mean_generated_tokens': sum(t.num_generated for t in trajs) / n,
      'statuses': dict(statuses),
      'finish': dict(collections.Counter(t.finish for t in trajs)),
      'samples': [dict(t.to_json(), correct=c)
                  for t, c in list(zip(trajs, correct))[:3]],
  }


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the tool and no-tool models, evaluates both; see the docstring."""
  train_p, eval_p = sources.synthetic_splits(
      config.task, int(config.data.num_train), int(config.data.num_eval),
      int(config.data.seed))
  data_dir = os.path.join(workdir, 'data')
  style = config.get('prompt', 'words')
  tool_path = tir_data.write_jsonl(
      os.path.join(data_dir, 'tool.jsonl'),
      tir_data.records(train_p, tool=True, prompt_style=style,
                       boxed=config.get('boxed', True)))
  plain_path = tir_data.write_jsonl(
      os.path.join(data_dir, 'no_tool.jsonl'),
      tir_data.records(train_p, tool=False, prompt_style=style))
  logging.info('Tool SFT data: %s (%d records)', tool_path, len(train_p))

  no_tool_dir = os.path.join(workdir, NO_TOOL_DIR)
  if config.get('eval_only'):  # Evaluate the models the workdir has.
    result = {'final_metrics': {}}
  else:
    result = sft.train(sft_config(config, tool_path,
                                  masked_blocks=[tir.OUTPUT_BLOCK]), workdir)
    if config.train_no_tool:
      result['no_tool'] = sft.train(sft_config(config, plain_path),
                                    no_tool_dir)

  # Held-out problems, greedy.
  prompts = [tir_data.prompt(p, style) for p in eval_p]
  answers = [p.answer for p in eval_p]
  ev = config.eval
  kw = dict(cache_size=int(ev.cache_size), batch_size=int(ev.batch_size))
  tool_on = loop_config(config.tools, None, ev.max_new_tokens)
  tool_off = loop_config(dict(config.tools, enabled=False), None,
                         ev.max_new_tokens)
  summary = {'task': dict(config.task), 'num_train': len(train_p)}
  model_cfg, params, tok = policy.load_policy(workdir)
  trajs, stats = run_loop(model_cfg, params, tok, prompts, tool_on, **kw)
  summary['tool_model_with_tool'] = dict(score(trajs, answers), lm=stats)
  trajs, _ = run_loop(model_cfg, params, tok, prompts, tool_off, **kw)
  summary['tool_model_without_tool'] = score(trajs, answers)
  if config.train_no_tool:
    model_cfg, params, tok = policy.load_policy(no_tool_dir)
    trajs, _ = run_loop(model_cfg, params, tok, prompts, tool_off, **kw)
    summary['no_tool_model'] = score(trajs, answers)
  summary['accuracy'] = {k: summary[k]['accuracy'] for k in (
      'tool_model_with_tool', 'tool_model_without_tool', 'no_tool_model')
                         if k in summary}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, SUMMARY_FILE), 'w') as f:
      json.dump(summary, f, indent=1)
  logging.info('Held-out accuracy: %s', summary['accuracy'])
  result['eval'] = summary
  return result
