"""Pieces every trainer shares: model/tokenizer from config, resume, logging."""

from __future__ import annotations

import json
import os
import signal
from typing import Any, Mapping

from absl import logging
import jax
import ml_collections

from jaxreason.data.tokenizer import (CharTokenizer, SentencePieceTokenizer,
                                      Tokenizer, load_tokenizer)
from jaxreason.models import hf
from jaxreason.models.transformer import TransformerConfig
from jaxreason.train.checkpoint import Checkpointer
from jaxreason.train.metrics import MetricWriter, Progress


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


class _DropInfoFrom:
  """logging.Filter dropping INFO records from some packages (orbax is chatty)."""

  def __init__(self, packages):
    self._packages = tuple(f'/{p}/' for p in packages)

  def filter(self, record) -> bool:
    if record.levelno > 20:
      return True
    return not any(p in record.pathname for p in self._packages)


def quiet_library_logs(packages=('orbax', 'grain')) -> None:
  """Keeps warnings from `packages` but drops their INFO lines."""
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  filt = _DropInfoFrom(packages)
  for handler in std_logging.getLogger().handlers + [
      logging.get_absl_handler()]:
    handler.addFilter(filt)


class StopRequested:
  """Set by SIGTERM (pre-emption): the loop saves and exits cleanly."""

  def __init__(self):
    self.flag = False
    try:
      signal.signal(signal.SIGTERM, self._handler)
    except ValueError:  # Not in the main thread (e.g. a notebook worker).
      pass

  def _handler(self, *_):
    logging.warning('SIGTERM: saving a checkpoint and stopping')
    self.flag = True


class RunContext:
  """Checkpointing, metrics and progress of one training run in `workdir`.

  The loop's step is the checkpoint's step (what `restore_or_init` returns
  and `after_step` saves under), which may count something else than
  optimiser updates (episodes, chunks). `host_state` {name: HostState}, e.g.
  a replay buffer, is saved in workdir/name beside each checkpoint and
  restored with it (train/checkpoint.py). `extra`, a JSON-able dict given to
  `after_step`, is saved with the checkpoint and is `self.extra` after a
  restore (None on a fresh start).
  """

  def __init__(self, workdir: str, total_steps: int, *, save_every: int,
               log_every: int, max_to_keep: int = 3, async_save: bool = True,
               host_state: Mapping[str, Any] | None = None):
    self.workdir = workdir
    os.makedirs(workdir, exist_ok=True)
    self.ckpt = Checkpointer(os.path.join(workdir, 'checkpoints'),
                             save_every=save_every, max_to_keep=max_to_keep,
                             async_save=async_save, host_state=host_state)
    self.writer = MetricWriter(workdir)
    self.total_steps = total_steps
    self.log_every = log_every
    self.progress: Progress | None = None
    self.extra: dict | None = None
    self.stop = StopRequested()

  @classmethod
  def from_config(cls, workdir: str, config: Any, **kwargs) -> 'RunContext':
    """total_steps, checkpoint_every and log_every taken from a recipe config."""
    return cls(workdir, config.total_steps,
               save_every=config.checkpoint_every, log_every=config.log_every,
               **kwargs)

  def resume(self, state, shardings, data_iter=None):
    """The latest checkpoint onto `shardings` if any, else `state`: (state, step)."""
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        state, shardings)
    return self.restore_or_init(abstract, lambda: state, data_iter)

  def restore_or_init(self, abstract_state, init_fn, data_iter=None):
    """Latest checkpoint if there is one, else `init_fn()`; returns (state, step)."""
    start = self.ckpt.latest_step()
    if start is not None:
      state, self.extra = self.ckpt.restore(abstract_state, data_iter, start)
      logging.info('Resuming from step %d', start)
    else:
      state, start = init_fn(), 0
    self.progress = Progress(self.total_steps, start)
    return state, start

  def after_step(self, step: int, state, metrics, *, tokens: float = 0.0,
                 data_iter=None, extra: dict | None = None) -> bool:
    """Logs, saves when due; `step` counts completed steps. True = stop now."""
    stats = self.progress.update(step, tokens)
    last = step == self.total_steps or self.stop.flag
    if step % self.log_every == 0 or last:
      values = self.writer.write(step, {**metrics, **stats})
      logging.info('%s', self.progress.line(step, stats, values))
    self.ckpt.save(step, state, data_iter, force=last, extra=extra)
    return self.stop.flag

  def close(self) -> None:
    self.ckpt.close()
    self.writer.close()
