"""A policy to sample from: (model config, params, tokenizer) from one folder.

  config, params, tokenizer = load_policy('/ckpt/Qwen2.5-0.5B-Instruct')
  config, params, tokenizer = load_policy('runs/sft', dtype='bfloat16')
  sampler = Sampler(config, cache_size=4096, tokenizer=tokenizer)

The folder is either

* a Hugging Face checkpoint: config.json, model.safetensors (or an index and
  its shards), and the tokenizer files (tokenizer.json, ...), read with
  `jaxreason.models.hf.load_checkpoint` and `load_tokenizer`; or
* a jaxreason workdir, as the recipes leave it: config.json (the run's
  ml_collections config, written at start by `run_config.save_run_config`),
  checkpoints/ (orbax) and tokenizer/ (character and SentencePiece
  tokenizers). The model config is rebuilt with `run_config.model_config_from`,
  the tokenizer from tokenizer/ or else `config.tokenizer`, and only the
  parameters of the train state are read (no optimizer state), onto the
  local devices whatever mesh the run was saved from (or, with `mesh`,
  straight into that mesh's shardings). `workdir/checkpoints`
  is accepted too. A LoRA run's (`config.lora.rank > 0`) adapters are
  merged into its base.

The notebooks, the generate CLI (`python -m jaxreason.generate`) and the RL /
search recipes load policies through here.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
import flax.linen as nn
import jax

from jaxreason.data.tokenizer import Tokenizer, load_tokenizer
from jaxreason.models import hf
from jaxreason.models import lora
from jaxreason.models.transformer import TransformerConfig, abstract_params
from jaxreason.sharding import rules as rules_lib
from jaxreason.train import checkpoint, run_config

Params = Any
_HF_WEIGHTS = ('model.safetensors', 'model.safetensors.index.json')
CHECKPOINTS_DIR = 'checkpoints'


def _kind(path: str) -> str:
  """'hf' or 'workdir'; FileNotFoundError saying what was looked for."""
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f'{path}: no such directory (expected a Hugging Face checkpoint or a '
        'jaxreason workdir)')
  has = lambda name: os.path.exists(os.path.join(path, name))
  if has('config.json') and any(has(w) for w in _HF_WEIGHTS):
    return 'hf'
  if os.path.isdir(os.path.join(path, CHECKPOINTS_DIR)):
    return 'workdir'
  raise FileNotFoundError(
      f'{path}: neither a Hugging Face checkpoint (looked for config.json and '
      f'{" or ".join(_HF_WEIGHTS)}) nor a jaxreason workdir (looked for '
      f'{CHECKPOINTS_DIR}/ and {run_config.RUN_CONFIG_FILE}); found '
      f'{sorted(os.listdir(path))}')


def load_policy(path: str, *, dtype: str | None = None,
                tokenizer: str | Tokenizer | None = None,
                step: int | None = None, require_tokenizer: bool = True,
                mesh: jax.sharding.Mesh | None = None,
                rules: rules_lib.LogicalRules = rules_lib.DEFAULT_RULES
                ) -> tuple[TransformerConfig, Params, Tokenizer | None]:
  """Loads (model config, params, tokenizer).

  Args:
    path: a Hugging Face checkpoint folder or a jaxreason workdir (or its
      checkpoints/ folder).
    dtype: 'float32' | 'bfloat16' | 'float16': the computation dtype (and
      the KV cache's) and the parameters' dtype. None: the checkpoint's
      config (HF: float32 parameters and computation).
    tokenizer: a tokenizer or a path for `load_tokenizer`, instead of the one
      in the folder.
    step: workdirs only: the checkpoint step (default: the latest).
    require_tokenizer: if False, a Hugging Face folder without tokenizer
      files loads with tokenizer None (for token-id prompts); if True that
      is a FileNotFoundError. A workdir always has one.
    mesh: if given, each parameter goes from the file straight to its
      sharding on this mesh (the model's logical axes mapped by `rules`), so
      no device ever holds the whole model; else to the default device.
    rules: logical-to-mesh rules, with `mesh`.

  Returns:
    (config, params, tokenizer); params are jax arrays.
  """
  path = os.path.abspath(os.fspath(path))
  if (os.path.basename(path) == CHECKPOINTS_DIR
      and os.path.exists(os.path.join(os.path.dirname(path),
                                      run_config.RUN_CONFIG_FILE))):
    path = os.path.dirname(path)
  kind = _kind(path)
  if isinstance(tokenizer, str):
    tokenizer = load_tokenizer(tokenizer)
  if kind == 'hf':
    if step is not None:
      raise ValueError(f'{path}: step={step} applies to workdirs only')
    config, params = hf.load_checkpoint(path, dtype=dtype or 'float32',
                                        param_dtype=dtype)  # NumPy, host.
    params = jax.device_put(params, _shardings(config, mesh, rules))
    if tokenizer is None:
      try:
        tokenizer = load_tokenizer(path)
      except FileNotFoundError:
        if require_tokenizer:
          raise
        logging.warning('%s has no tokenizer files', path)
  else:
    config, params, tokenizer = _load_workdir(path, dtype, tokenizer, step,
                                              mesh, rules)
  if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
    raise ValueError(f'{path}: the tokenizer has {tokenizer.vocab_size} ids, '
                     f'the model only {config.vocab_size}')
  logging.info('Loaded %s policy from %s (%.2fM parameters, %s)', kind, path,
               config.num_params() / 1e6, config.dtype)
  return config, params, tokenizer


def _shardings(config: TransformerConfig, mesh: jax.sharding.Mesh | None,
               rules: rules_lib.LogicalRules) -> Any:
  """Per-parameter shardings on `mesh`, or the default device's."""
  if mesh is None:
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda _: device, nn.unbox(abstract_params(config)))
  return rules_lib.param_shardings(abstract_params(config), mesh, rules)


def _load_workdir(path: str, dtype: str | None,
                  tokenizer: Tokenizer | None, step: int | None,
                  mesh: jax.sharding.Mesh | None,
                  rules: rules_lib.LogicalRules
                  ) -> tuple[TransformerConfig, Params, Tokenizer]:
  saved_config = run_config.load_run_config(path)
  if tokenizer is None:
    saved = os.path.join(path, run_config.TOKENIZER_DIR)
    tokenizer = (load_tokenizer(saved) if os.path.isdir(saved) else
                 run_config.tokenizer_from_config(saved_config.tokenizer))
  config = run_config.model_config_from(saved_config.model,
                                        tokenizer.vocab_size)
  lora_cfg = lora.config_from(saved_config.get('lora'))
  shardings = _shardings(config, mesh, rules)
  params = restore_params(os.path.join(path, CHECKPOINTS_DIR), config, step,
                          lora_cfg=lora_cfg,
                          shardings=None if lora_cfg else shardings)
  if dtype:
    config = config.replace(dtype=dtype, param_dtype=dtype)
  # Casting (and placing a merged LoRA model) keeps each leaf's sharding.
  dtype = config.jnp_param_dtype
  params = jax.jit(lambda p: jax.tree.map(lambda x: x.astype(dtype), p),
                   out_shardings=shardings)(params)
  return config, params, tokenizer


def restore_params(directory: str, config: TransformerConfig,
                   step: int | None = None, *,
                   lora_cfg: lora.LoraConfig | None = None,
                   shardings: Any = None) -> Params:
  """The Transformer params of a saved train state.

  `checkpoint.restore_params` onto the model's abstract params (a partial
  restore: no optimizer state; any saved topology), read into `shardings`
  (a tree like the params) or onto the first local device. `config` is the
  run's model config (its param_dtype is the saved one). With `lora_cfg` the
  saved params are LoRA's {'base', 'lora'}, and the merged params are
  returned.
  """
  shapes = nn.unbox(abstract_params(config) if lora_cfg is None else
                    lora.abstract_params(config, lora_cfg))
  if shardings is not None:
    shapes = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        shapes, shardings)
  params = checkpoint.restore_params(directory, shapes, step)
  if lora_cfg is not None:
    params = jax.jit(lora.merge, static_argnums=1)(params, lora_cfg)
  return params
