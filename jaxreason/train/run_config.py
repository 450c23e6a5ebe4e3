"""A run's config: the model and tokenizer it names, and its copy in the workdir.

  model_cfg = run_config.model_config_from(config.model, tokenizer.vocab_size)
  run_config.save_run_config(workdir, config, tokenizer)  # at the run's start
  config = run_config.load_run_config(workdir)  # e.g. by sampling.load_policy
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from absl import logging
import jax
import ml_collections

from jaxreason.data.tokenizer import (CharTokenizer, SentencePieceTokenizer,
                                      Tokenizer, load_tokenizer)
from jaxreason.models import hf
from jaxreason.models.transformer import TransformerConfig


def to_dict(cfg: Any) -> dict:
  if isinstance(cfg, ml_collections.ConfigDict):
    return cfg.to_dict()
  return dict(cfg)


def tokenizer_from_config(cfg: Mapping[str, Any]) -> Tokenizer:
  """`kind='char'` (the synthetic tasks) or `path=DIR` (HF / SentencePiece)."""
  cfg = to_dict(cfg)
  if cfg.get('path'):
    return load_tokenizer(cfg['path'])
  if cfg.get('kind', 'char') == 'char':
    return CharTokenizer()
  raise ValueError(f"tokenizer: set path=DIR or kind='char', got {cfg}")


def model_config_from(cfg: Mapping[str, Any], vocab_size: int | None = None
                      ) -> TransformerConfig:
  """TransformerConfig from `config.model`.

  `preset` picks a named shape (other fields override it); `hf_checkpoint`
  reads the shape from a Hugging Face folder; `vocab_size=0` takes the
  tokenizer's vocabulary size.
  """
  cfg = {k: v for k, v in to_dict(cfg).items()}
  preset = cfg.pop('preset', None)
  ckpt = cfg.pop('hf_checkpoint', None)
  if ckpt:
    path = os.path.join(ckpt, 'config.json')
    if not os.path.exists(path):
      raise FileNotFoundError(f'model.hf_checkpoint: {path} does not exist')
    with open(path) as f:
      base = hf.config_from_hf(json.load(f))
    return base.replace(**cfg)
  if preset:
    base = TransformerConfig.from_preset(preset, **cfg)
  else:
    base = TransformerConfig(**cfg)
  if not base.vocab_size:
    if vocab_size is None:
      raise ValueError('model.vocab_size=0 needs a tokenizer vocabulary')
    base = base.replace(vocab_size=vocab_size)
  return base


# What a run writes at its start so that its checkpoints can be loaded without
# the config file it was launched with (jaxreason.sampling.load_policy).
RUN_CONFIG_FILE = 'config.json'
TOKENIZER_DIR = 'tokenizer'


def save_run_config(workdir: str, config: Any,
                    tokenizer: Tokenizer | None = None) -> None:
  """Writes workdir/config.json and workdir/tokenizer/ (process 0 only).

  config.json is the whole ml_collections config as JSON (tuples become
  lists); `load_run_config` reads it back. Character and SentencePiece
  tokenizers (which may be built or trained in memory) are saved; a
  tokenizer loaded from `config.tokenizer.path` is found there again.
  """
  if jax.process_index() != 0:
    return
  os.makedirs(workdir, exist_ok=True)
  if isinstance(config, ml_collections.ConfigDict):
    text = config.to_json_best_effort(indent=2)
  else:
    text = json.dumps(to_dict(config), indent=2, default=str)
  path = os.path.join(workdir, RUN_CONFIG_FILE)
  with open(path + '.tmp', 'w') as f:
    f.write(text + '\n')
  os.replace(path + '.tmp', path)  # Never a half-written config.
  if isinstance(tokenizer, (CharTokenizer, SentencePieceTokenizer)):
    tokenizer.save(os.path.join(workdir, TOKENIZER_DIR))
  logging.info('Wrote %s', path)


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config `save_run_config` wrote into workdir."""
  path = os.path.join(workdir, RUN_CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: not found (recipes write it when a run '
                            'starts)')
  with open(path) as f:
    try:
      return ml_collections.ConfigDict(json.load(f))
    except json.JSONDecodeError as e:
      raise ValueError(f'{path}: invalid JSON ({e})') from e
