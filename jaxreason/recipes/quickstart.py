"""The whole reasoning pipeline on the synthetic task, one stage at a time.

  from configs import quickstart as qs_config
  from jaxreason.recipes import quickstart
  result = quickstart.train(qs_config.get_config('debug'), '/tmp/qs')
  # or stage by stage (what experiments/quickstart.ipynb does):
  for stage in quickstart.STAGES:
    quickstart.run_stage(config, workdir, stage)

Stages, each in `workdir/STAGE/` and each an existing recipe run on the
config's sub-config of the same name:

  tokenizer  a SentencePiece BPE model trained on the task's texts
  sft        the policy, on step-by-step solutions (recipes/sft.py)
  prm        a discriminative PRM from the SFT policy (recipes/prm.py)
  thinkprm   a generative verifier from the SFT policy (recipes/thinkprm.py)
  grpo       the SFT policy with GRPO (recipes/grpo.py)
  tir        a tool-using model on the large-number split (recipes/tir.py)
  eval       held-out search: the SFT and GRPO policies, greedy and majority,
             best-of-N and beam search with each verifier
             (recipes/search_eval.py)
  report     the results table (Markdown, JSON), the claims checked against
             it, and the plots (recipes/quickstart_report.py)

A finished stage writes `STAGE/done.json` (its summary and seconds); a
second run skips it, and a stage killed half-way resumes from its own
checkpoints (the recipes resume). Sub-configs are wired together here: the
tokenizer path, the SFT workdir as the verifiers' and GRPO's start, the
GRPO workdir as the searched policy.
"""

from __future__ import annotations

import json
import os
import string
import time
from typing import Any, Callable

from absl import logging
import jax
import ml_collections

from jaxreason.data import sources
from jaxreason.data.tokenizer import CHAT_TOKENS
from jaxreason.data.tokenizer import SentencePieceTokenizer
from jaxreason.reasoning import tir_data
from jaxreason.recipes import grpo
from jaxreason.recipes import prm
from jaxreason.recipes import quickstart_report
from jaxreason.recipes import search_eval
from jaxreason.recipes import sft
from jaxreason.recipes import thinkprm
from jaxreason.recipes import tir

STAGES = ('tokenizer', 'sft', 'prm', 'thinkprm', 'grpo', 'tir', 'eval',
          'report')
DONE_FILE = 'done.json'
# Always single pieces: steps are separated by blank lines, and a merged
# '\n\n\\' piece would put a step boundary inside a token.
TOKENIZER_SYMBOLS = ('\n\n',)


def stage_dir(workdir: str, stage: str) -> str:
  return os.path.join(workdir, stage)


def done(workdir: str, stage: str) -> dict[str, Any] | None:
  """The stage's saved summary if it finished, else None."""
  path = os.path.join(stage_dir(workdir, stage), DONE_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _mark_done(workdir: str, stage: str, summary: dict, seconds: float
               ) -> dict:
  out = {'stage': stage, 'seconds': seconds, 'summary': summary}
  if jax.process_index() == 0:
    path = os.path.join(stage_dir(workdir, stage), DONE_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
      json.dump(out, f, indent=1, default=str)
    os.replace(tmp, path)  # Atomic: a killed run never leaves half a marker.
  return out


# --- Sub-configs, wired to the earlier stages -------------------------------


def _copy(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(c.to_dict())


def _tokenizer(workdir: str) -> dict:
  return dict(path=stage_dir(workdir, 'tokenizer'))


def stage_config(config: ml_collections.ConfigDict, workdir: str,
                 stage: str) -> ml_collections.ConfigDict:
  """The recipe config of `stage`, pointing at the earlier stages' outputs."""
  c = _copy(config[stage])
  sft_dir = stage_dir(workdir, 'sft')
  if stage in ('sft', 'tir'):
    c.tokenizer = _tokenizer(workdir)
  elif stage == 'prm':
    c.init_workdir = sft_dir
  elif stage == 'thinkprm':
    c.init_workdir = sft_dir
    c.tokenizer = _tokenizer(workdir)
    c.model = config.sft.model.to_dict()
  elif stage == 'grpo':
    c.policy = sft_dir
  return c


# --- Stages -----------------------------------------------------------------


def tokenizer_texts(config: ml_collections.ConfigDict) -> list[str]:
  """Prompts and solutions of the SFT data and of both TIR formats.

  Plus one line of every printable ASCII character, so that any text the
  verifiers write (ThinkPRM chains) has pieces without byte fallback.
  """
  t = config.tokenizer
  train, _ = sources.sft_records(dict(config.sft.data.to_dict(),
                                      num_train=t.num_texts, num_eval=0))
  texts = [r['prompt'] + r['completion'] for r in train]
  problems = sources.train_problems(config.tir.task.to_dict(),
                                    max(1, t.num_texts // 4),
                                    int(config.tir.data.seed))
  style = config.tir.prompt
  for tool in (True, False):
    texts += [r['prompt'] + r['completion'] for r in tir_data.records(
        problems, tool=tool, prompt_style=style, boxed=config.tir.boxed)]
  return texts + [string.printable]


def train_tokenizer(config: ml_collections.ConfigDict, workdir: str) -> dict:
  texts = tokenizer_texts(config)
  tok = SentencePieceTokenizer.train(
      texts, int(config.tokenizer.vocab_size), byte_fallback=False,
      user_defined_symbols=CHAT_TOKENS + TOKENIZER_SYMBOLS)
  out = stage_dir(workdir, 'tokenizer')
  if jax.process_index() == 0:
    tok.save(out)
  lengths = [len(tok.encode(t)) for t in texts[:1000]]
  chars = [len(t) for t in texts[:1000]]
  return {'vocab_size': tok.vocab_size, 'num_texts': len(texts),
          'chars_per_token': sum(chars) / sum(lengths),
          'example': [tok.id_to_token(i) for i in tok.encode(texts[0])]}


def _sft(config, workdir) -> dict:
  r = sft.train(stage_config(config, workdir, 'sft'),
                stage_dir(workdir, 'sft'))
  return {'final_metrics': r.get('final_metrics', {}),
          'greedy_accuracy': r.get('eval', {}).get('accuracy')}


def _prm(config, workdir) -> dict:
  r = prm.train(stage_config(config, workdir, 'prm'),
                stage_dir(workdir, 'prm'))
  return {k: v for k, v in r.items() if k in ('final_metrics', 'eval')}


def _thinkprm(config, workdir) -> dict:
  r = thinkprm.train(stage_config(config, workdir, 'thinkprm'),
                     stage_dir(workdir, 'thinkprm'))
  return {k: v for k, v in r.items()
          if k in ('final_metrics', 'eval', 'data')}


def _grpo(config, workdir) -> dict:
  r = grpo.train(stage_config(config, workdir, 'grpo'),
                 stage_dir(workdir, 'grpo'))
  return {'final_metrics': r.get('final_metrics', {}),
          **{k: r[k]['accuracy'] for k in ('eval_before', 'eval_after')
             if k in r}}


def _tir(config, workdir) -> dict:
  r = tir.train(stage_config(config, workdir, 'tir'),
                stage_dir(workdir, 'tir'))
  ev = r['eval']
  return {'accuracy': ev['accuracy'],
          'num_problems': int(config.tir.data.num_eval),
          'tool_model_with_tool': {k: v for k, v in
                                   ev['tool_model_with_tool'].items()
                                   if k != 'samples'}}


def search_runs(config: ml_collections.ConfigDict, workdir: str
                ) -> dict[str, ml_collections.ConfigDict]:
  """{run name: search_eval config} of the eval stage.

  All runs share the held-out problems and the sampling seed, so the
  verifier runs rank the same candidates majority votes over.
  """
  e = config.eval
  policies = {'sft': stage_dir(workdir, 'sft'),
              'grpo': stage_dir(workdir, 'grpo')}
  runs = {}
  for name, run in e.runs.items():
    c = _copy(config.search)
    c.policy = policies[run.policy]
    c.methods = tuple(run.methods)
    c.verifier.kind = run.verifier
    if run.verifier in ('prm', 'thinkprm'):
      c.verifier.path = stage_dir(workdir, run.verifier)
    c.ns = tuple(run.get('ns', c.ns))
    runs[name] = c
  return runs


def _eval(config, workdir) -> dict:
  out = {}
  for name, c in search_runs(config, workdir).items():
    d = os.path.join(stage_dir(workdir, 'eval'), name)
    path = os.path.join(d, search_eval.RESULTS_FILE)
    if os.path.exists(path):  # Finished before the stage was killed.
      logging.info('eval/%s: done before, kept', name)
    else:
      start = time.time()
      search_eval.run(c, d)
      logging.info('eval/%s: %.0f s', name, time.time() - start)
    with open(path) as f:
      out[name] = json.load(f)['summary']
  return out


def _report(config, workdir) -> dict:
  return quickstart_report.write(config, workdir, STAGES)


STAGE_FNS: dict[str, Callable[[Any, str], dict]] = {
    'tokenizer': train_tokenizer, 'sft': _sft, 'prm': _prm,
    'thinkprm': _thinkprm, 'grpo': _grpo, 'tir': _tir, 'eval': _eval,
    'report': _report}


def run_stage(config: ml_collections.ConfigDict, workdir: str,
              stage: str) -> dict[str, Any]:
  """Runs `stage` unless it finished before; returns its done.json."""
  if stage not in STAGE_FNS:
    raise ValueError(f'stage {stage!r}: expected one of {STAGES}')
  previous = done(workdir, stage)
  if previous is not None and stage != 'report':
    logging.info('[quickstart] %s: finished before (%.0f s), skipped',
                 stage, previous['seconds'])
    return previous
  missing = [s for s in STAGES[:STAGES.index(stage)]
             if s in needs(stage) and done(workdir, s) is None]
  if missing:
    raise ValueError(f'stage {stage!r} needs {missing} first (no '
                     f'{DONE_FILE} in {workdir}/<stage>)')
  logging.info('[quickstart] %s: starting', stage)
  start = time.time()
  summary = STAGE_FNS[stage](config, workdir)
  seconds = time.time() - start
  logging.info('[quickstart] %s: done in %.0f s', stage, seconds)
  return _mark_done(workdir, stage, summary, seconds)


def needs(stage: str) -> tuple[str, ...]:
  """The stages whose outputs `stage` reads."""
  return {'tokenizer': (), 'sft': ('tokenizer',), 'tir': ('tokenizer',),
          'prm': ('sft',), 'thinkprm': ('sft',), 'grpo': ('sft',),
          'eval': ('sft', 'prm', 'thinkprm', 'grpo'),
          'report': ('eval',)}[stage]


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs `config.stages` in order; returns {stage: done.json}."""
  # --config.stages=eval,report arrives as one string in a tuple.
  stages = [s for item in ([config.stages] if isinstance(config.stages, str)
                           else config.stages)
            for s in str(item).split(',') if s]
  unknown = [s for s in stages if s not in STAGES]
  if unknown:
    raise ValueError(f'config.stages: unknown {unknown}; expected some of '
                     f'{STAGES}')
  os.makedirs(workdir, exist_ok=True)
  start = time.time()
  out = {}
  for i, stage in enumerate(stages):
    logging.info('[quickstart] stage %d/%d (%s), %.0f s so far', i + 1,
                 len(stages), stage, time.time() - start)
    out[stage] = run_stage(config, workdir, stage)
  logging.info('[quickstart] all stages: %.0f s', time.time() - start)
  return out
