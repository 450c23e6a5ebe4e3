"""ProcessBench evaluation of a verifier, from a config.

  from jaxreason.recipes import processbench
  result = processbench.evaluate(get_config('debug'), '/tmp/pb')

Builds the verifier (`config.verifier`: kind='prm' loads a
`recipes.prm` workdir (an OutcomeRM if it trained an ORM / ranking RM; 'orm'
forces that); kind='random' is a randomly initialised tiny PRM
for ':debug'), then

  * the real subsets (<data_dir>/processbench/<subset>.json, the first
    `limit` records of each if limit > 0): threshold picked on `pick_on`
    (gsm8k, the reference protocol) unless `threshold` >= 0, reused on
    every subset; the per-subset oracle threshold is reported as an upper
    bound only. Skipped with a warning when the folder is absent and
    `require_data` is False.
  * a held-out synthetic set in the same format (`synthetic.num` > 0):
    threshold picked on its 'dev' half, reported on 'test'.

Writes workdir/processbench_{real,synthetic}.{json,md}; returns both.
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
import jax
import ml_collections

from jaxreason.data import paths
from jaxreason.evals import processbench
from jaxreason.models.heads import init_reward_params
from jaxreason.train import run_config
from jaxreason.verifiers.base import Verifier
from jaxreason.verifiers.prm import DiscriminativePRM, make_reward_model
from jaxreason.verifiers.reward_model import load_verifier


def make_verifier(cfg: ml_collections.ConfigDict) -> Verifier:
  """The verifier `config.verifier` names (module docstring)."""
  kind = cfg.kind
  if kind in ('prm', 'orm'):
    if not cfg.workdir:
      raise ValueError('verifier.workdir: set it to a recipes/prm.py workdir')
    return load_verifier(cfg.workdir, outcome=True if kind == 'orm' else None,
                         batch_size=int(cfg.batch_size),
                         max_len=int(cfg.max_len) or None)
  if kind == 'random':
    tokenizer = run_config.tokenizer_from_config(cfg.tokenizer)
    model_cfg = run_config.model_config_from(cfg.model, tokenizer.vocab_size)
    model = make_reward_model(model_cfg, cfg.head, tokenizer)
    params = init_reward_params(model, jax.random.key(int(cfg.seed)))
    return DiscriminativePRM(params, model_cfg, tokenizer, head=cfg.head,
                             max_len=int(cfg.max_len),
                             batch_size=int(cfg.batch_size))
  raise ValueError(f"verifier.kind={kind!r}: expected 'prm', 'orm', 'random'")


def evaluate(config: ml_collections.ConfigDict,
             workdir: str) -> dict[str, Any]:
  """Runs the evaluations (module docstring); returns {'real', 'synthetic'}."""
  verifier = make_verifier(config.verifier)
  threshold = None if config.threshold < 0 else float(config.threshold)
  result: dict[str, Any] = {}
  root = paths.data_dir(config.data_dir) / 'processbench'
  if root.exists() or config.require_data:
    subsets, bad = processbench.read_processbench(
        config.data_dir, tuple(config.subsets), int(config.limit))
    for name, b in bad.items():
      if b:
        logging.warning('%s: %d records with missing fields, e.g. %s', name,
                        len(b), b[:3])
    res = processbench.evaluate_verifier(verifier, subsets,
                                         pick_on=config.pick_on,
                                         threshold=threshold, bad=bad)
    res['limit'] = int(config.limit)
    result['real'] = res
    logging.info('ProcessBench (real, limit %d): average F1 %.3f',
                 config.limit, res['average_f1'])
  else:
    logging.warning('%s absent: real ProcessBench skipped', root)
  if config.synthetic.num > 0:
    subsets = processbench.synthetic_dev_test(
        config.synthetic.task, int(config.synthetic.num),
        seed=int(config.synthetic.seed))
    res = processbench.evaluate_verifier(verifier, subsets, pick_on='dev')
    result['synthetic'] = res
    logging.info('ProcessBench (synthetic held-out): test F1 %.3f',
                 res['subsets']['test']['f1'])
  if jax.process_index() == 0:
    for key, res in result.items():
      processbench.write_results(
          workdir, f'processbench_{key}', res,
          f'ProcessBench ({key}), verifier {config.verifier.kind} '
          f'{config.verifier.get("workdir", "")}')
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json_best_effort(indent=2))
    with open(os.path.join(workdir, 'result.json'), 'w') as f:
      json.dump(result, f, indent=1, default=str)
  return result
