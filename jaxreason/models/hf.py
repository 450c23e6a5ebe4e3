"""Hugging Face checkpoints (Qwen2 / Llama safetensors) <-> jaxreason params.

  config, params = load_checkpoint('/ckpt/Qwen2.5-0.5B')   # numpy, float32
  logits = Transformer(config).apply({'params': params}, tokens)
  save_checkpoint('/out/step_1000', config, params, dtype='bfloat16')
  config, params = load_checkpoint(path, scan_layers=True)  # stacked layers

Reads config.json in both the transformers-4 layout (`rope_theta`,
`rope_scaling`) and the transformers-5 layout (`rope_parameters`) and writes
both, so either version loads what is saved here. Tensors are read with
`safetensors.safe_open(framework='numpy')`, which represents BF16 with
ml_dtypes (safetensors >= 0.6); torch is not needed. The HF linear weights
are [out, in]; our kernels are [in..., out...], so a kernel is the transposed
weight reshaped (see `_spec`). A `scan_layers` model's stacked params
(`layers/...` with a leading [L] axis) are converted per layer with
`jaxreason.models.layout` on the way in and out; the files are the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import safetensors
import safetensors.numpy

from jaxreason.models import layout
from jaxreason.models.transformer import RopeScaling, TransformerConfig

Params = dict[str, Any]
SUPPORTED_MODEL_TYPES = ('qwen2', 'llama', 'mistral')
_SUPPORTED_DTYPES = {'F64', 'F32', 'F16', 'BF16'}
_ARCHITECTURES = {'qwen2': 'Qwen2ForCausalLM', 'llama': 'LlamaForCausalLM'}
_INDEX = 'model.safetensors.index.json'


# Configs ----------------------------------------------------------------------


def _rope_from_hf(hf: dict[str, Any]) -> tuple[float, RopeScaling | None]:
  """(rope_theta, scaling), resolved as transformers 5 does."""
  field = 'rope_scaling' if hf.get('rope_scaling') else 'rope_parameters'
  rope = hf.get(field) or {}
  theta = float(rope.get('rope_theta', hf.get('rope_theta', 10000.0)))
  rope_type = rope.get('rope_type', rope.get('type', 'default'))
  if rope.get('partial_rotary_factor', 1.0) != 1.0:
    raise ValueError(f'config.json: {field}.partial_rotary_factor='
                     f'{rope["partial_rotary_factor"]} is not supported')
  if rope_type == 'default':
    return theta, None
  if rope_type != 'llama3':
    raise ValueError(f'config.json: {field}.rope_type={rope_type!r} is not '
                     "supported (supported: 'default', 'llama3')")
  missing = [k for k in ('factor', 'low_freq_factor', 'high_freq_factor')
             if k not in rope]
  if missing:
    raise ValueError(f'config.json: {field} (llama3) lacks {missing}')
  return theta, RopeScaling(
      factor=float(rope['factor']),
      low_freq_factor=float(rope['low_freq_factor']),
      high_freq_factor=float(rope['high_freq_factor']),
      original_max_position_embeddings=int(rope.get(
          'original_max_position_embeddings',
          hf.get('max_position_embeddings', 8192))))


def config_from_hf(hf_config: dict[str, Any], *, dtype: str = 'float32',
                   param_dtype: str | None = None) -> TransformerConfig:
  """TransformerConfig from a parsed config.json. param_dtype defaults to f32.

  'mistral' (without sliding window) is read as 'llama' and exported as such.
  """
  hf = hf_config
  model_type = hf.get('model_type')
  if model_type not in SUPPORTED_MODEL_TYPES:
    raise ValueError(f'config.json: model_type={model_type!r} is not '
                     f'supported; supported: {list(SUPPORTED_MODEL_TYPES)}')
  for key in ('vocab_size', 'hidden_size', 'intermediate_size',
              'num_hidden_layers', 'num_attention_heads'):
    if key not in hf:
      raise ValueError(f'config.json: required field {key!r} is missing')
  if hf.get('hidden_act', 'silu') != 'silu':
    raise ValueError(f'config.json: hidden_act={hf["hidden_act"]!r} is not '
                     "supported (only 'silu')")
  if hf.get('mlp_bias'):
    raise ValueError('config.json: mlp_bias=true is not supported')
  if model_type == 'qwen2' and hf.get('use_sliding_window'):
    raise ValueError('config.json: use_sliding_window=true is not supported')
  max_pos = int(hf.get('max_position_embeddings',
                       32768 if model_type == 'qwen2' else 2048))
  window = hf.get('sliding_window') or max_pos
  if model_type == 'mistral' and window < max_pos:
    raise ValueError(f'config.json: sliding_window={hf["sliding_window"]} is '
                     'not supported')
  theta, scaling = _rope_from_hf(hf)
  eos = hf.get('eos_token_id')
  if isinstance(eos, list):
    logging.warning('config.json: eos_token_id=%s; keeping only %s', eos,
                    eos[0] if eos else None)
    eos = eos[0] if eos else None
  return TransformerConfig(
      vocab_size=int(hf['vocab_size']),
      num_layers=int(hf['num_hidden_layers']),
      embed_dim=int(hf['hidden_size']),
      mlp_dim=int(hf['intermediate_size']),
      num_heads=int(hf['num_attention_heads']),
      num_kv_heads=int(hf.get('num_key_value_heads')
                       or hf['num_attention_heads']),
      head_dim=hf.get('head_dim'),
      rope_theta=theta, rope_scaling=scaling,
      rms_norm_eps=float(hf.get('rms_norm_eps', 1e-6)),
      qkv_bias=(model_type == 'qwen2'
                or (model_type == 'llama' and bool(hf.get('attention_bias')))),
      tie_embeddings=bool(hf.get('tie_word_embeddings', False)),
      max_position_embeddings=max_pos,
      dtype=dtype, param_dtype=param_dtype or 'float32',
      model_type='qwen2' if model_type == 'qwen2' else 'llama',
      bos_token_id=hf.get('bos_token_id'), eos_token_id=eos)


def config_to_hf(config: TransformerConfig) -> dict[str, Any]:
  """config.json contents that transformers 4 and 5 load as the architecture."""
  c = config
  if c.model_type not in _ARCHITECTURES:
    raise ValueError(f'model_type={c.model_type!r}: can export only '
                     f'{sorted(_ARCHITECTURES)}')
  if c.model_type == 'qwen2' and not c.qkv_bias:
    raise ValueError('qwen2 always has q/k/v biases; export qkv_bias=False '
                     "models with model_type='llama'")
  s = c.rope_scaling
  scaling = None if s is None else {
      'rope_type': 'llama3', **dataclasses.asdict(s)}
  hf = {
      'architectures': [_ARCHITECTURES[c.model_type]],
      'model_type': c.model_type,
      'vocab_size': c.vocab_size, 'hidden_size': c.embed_dim,
      'intermediate_size': c.mlp_dim, 'num_hidden_layers': c.num_layers,
      'num_attention_heads': c.num_heads,
      'num_key_value_heads': c.num_kv_heads,
      'hidden_act': 'silu',
      'max_position_embeddings': c.max_position_embeddings,
      'rms_norm_eps': c.rms_norm_eps, 'initializer_range': c.init_std,
      'rope_theta': c.rope_theta, 'rope_scaling': scaling,
      'rope_parameters': {**(scaling or {'rope_type': 'default'}),
                          'rope_theta': c.rope_theta},
      'tie_word_embeddings': c.tie_embeddings,
      'bos_token_id': c.bos_token_id, 'eos_token_id': c.eos_token_id,
      'attention_dropout': 0.0, 'use_cache': True,
      'dtype': c.param_dtype, 'torch_dtype': c.param_dtype,
  }
  if c.head_dim is not None:
    hf['head_dim'] = c.head_dim
  if c.model_type == 'qwen2':
    hf.update(use_sliding_window=False, sliding_window=None,
              max_window_layers=c.num_layers)
  else:
    hf.update(attention_bias=c.qkv_bias, mlp_bias=False)
  return hf


# Name and layout mapping ------------------------------------------------------


_Entry = tuple[str, tuple[str, ...], tuple[int, ...], tuple[int, ...], bool]


def _spec(c: TransformerConfig) -> list[_Entry]:
  """(hf name, param path, hf shape, param shape, transpose) per tensor."""
  d, f, h, k, hd, v = (c.embed_dim, c.mlp_dim, c.num_heads, c.num_kv_heads,
                       c.head_size, c.vocab_size)
  out = [('model.embed_tokens.weight', ('embed_tokens', 'embedding'), (v, d),
          (v, d), False)]
  for i in range(c.num_layers):
    hf_p, p = f'model.layers.{i}.', f'layers_{i}'
    for norm in ('input_layernorm', 'post_attention_layernorm'):
      out.append((f'{hf_p}{norm}.weight', (p, norm, 'scale'), (d,), (d,),
                  False))
    for name, n in (('q_proj', h), ('k_proj', k), ('v_proj', k)):
      out.append((f'{hf_p}self_attn.{name}.weight', (p, 'self_attn', name,
                  'kernel'), (n * hd, d), (d, n, hd), True))
      if c.qkv_bias:
        out.append((f'{hf_p}self_attn.{name}.bias', (p, 'self_attn', name,
                    'bias'), (n * hd,), (n, hd), False))
    out.append((f'{hf_p}self_attn.o_proj.weight', (p, 'self_attn', 'o_proj',
                'kernel'), (d, h * hd), (h, hd, d), True))
    for name, i_dim, o_dim in (('gate_proj', d, f), ('up_proj', d, f),
                               ('down_proj', f, d)):
      out.append((f'{hf_p}mlp.{name}.weight', (p, 'mlp', name, 'kernel'),
                  (o_dim, i_dim), (i_dim, o_dim), True))
  out.append(('model.norm.weight', ('norm', 'scale'), (d,), (d,), False))
  if not c.tie_embeddings:
    out.append(('lm_head.weight', ('lm_head', 'kernel'), (v, d), (d, v), True))
  return out


def _o_bias_names(c: TransformerConfig) -> list[str]:
  """HF Llama with attention_bias also biases o_proj; we keep it at zero."""
  if c.model_type != 'llama' or not c.qkv_bias:
    return []
  return [f'model.layers.{i}.self_attn.o_proj.bias'
          for i in range(c.num_layers)]


# Loading ----------------------------------------------------------------------


def _weight_files(path: str) -> tuple[list[str], dict[str, str]]:
  """Safetensors file names and the index's weight_map ({} if unsharded)."""
  index = os.path.join(path, _INDEX)
  if os.path.exists(index):
    with open(index) as fp:
      weight_map = json.load(fp).get('weight_map') or {}
    files = sorted(set(weight_map.values()))
  elif os.path.exists(os.path.join(path, 'model.safetensors')):
    weight_map, files = {}, ['model.safetensors']
  else:
    raise FileNotFoundError(f'{path}: no model.safetensors or {_INDEX} '
                            f'(found {sorted(os.listdir(path))})')
  for name in files:
    if not os.path.exists(os.path.join(path, name)):
      raise FileNotFoundError(f'{index}: lists {name}, which does not exist')
  return files, weight_map


def load_checkpoint(path: str, *, dtype: str = 'float32',
                    param_dtype: str | None = None, scan_layers: bool = False
                    ) -> tuple[TransformerConfig, Params]:
  """Reads an HF Qwen2/Llama checkpoint directory into numpy params.

  Tensors (F32, F16, BF16) are cast to param_dtype (default float32). With
  `scan_layers` the config has scan_layers=True and the layers' params are
  stacked (`layout.stack_layers`). Raises FileNotFoundError / ValueError
  naming the file and tensor at fault.
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f'{path}: checkpoint directory does not exist')
  config_file = os.path.join(path, 'config.json')
  if not os.path.exists(config_file):
    raise FileNotFoundError(f'{config_file}: not found')
  with open(config_file) as fp:
    config = config_from_hf(json.load(fp), dtype=dtype, param_dtype=param_dtype)
  files, weight_map = _weight_files(path)
  np_dtype = np.dtype(config.jnp_param_dtype)
  params: Params = {}
  with contextlib.ExitStack() as stack:
    handles = {name: stack.enter_context(safetensors.safe_open(
        os.path.join(path, name), framework='numpy')) for name in files}
    where = {key: name for name, fh in handles.items() for key in fh.keys()}

    def read(hf_name: str, hf_shape: tuple[int, ...] | None) -> np.ndarray:
      if hf_name not in where:
        hint = (f' ({_INDEX} maps it to {weight_map[hf_name]})'
                if hf_name in weight_map else '')
        raise ValueError(f'{path}: tensor {hf_name} is missing from '
                         f'{", ".join(files)}{hint}')
      file = os.path.join(path, where[hf_name])
      tensor = handles[where[hf_name]].get_slice(hf_name)
      if tensor.get_dtype() not in _SUPPORTED_DTYPES:
        raise ValueError(f'{file}: tensor {hf_name} has dtype '
                         f'{tensor.get_dtype()}; supported: '
                         f'{sorted(_SUPPORTED_DTYPES)}')
      shape = tuple(tensor.get_shape())
      if hf_shape is not None and shape != hf_shape:
        raise ValueError(f'{file}: tensor {hf_name} has shape {shape}, '
                         f'expected {hf_shape} from config.json')
      return handles[where[hf_name]].get_tensor(hf_name)

    spec = _spec(config)
    for hf_name, p, hf_shape, shape, transpose in spec:
      x = read(hf_name, hf_shape)
      x = (x.T if transpose else x).reshape(shape).astype(np_dtype)
      node = params
      for key in p[:-1]:
        node = node.setdefault(key, {})
      node[p[-1]] = np.ascontiguousarray(x)
    for hf_name in _o_bias_names(config):
      if hf_name in where and np.any(read(hf_name, (config.embed_dim,))):
        raise ValueError(f'{os.path.join(path, where[hf_name])}: tensor '
                         f'{hf_name} is nonzero; the model has no o_proj bias')
  known = {s[0] for s in spec} | set(_o_bias_names(config))
  if config.tie_embeddings:
    known.add('lm_head.weight')
  extra = sorted(k for k in where if k not in known
                 and not k.endswith('rotary_emb.inv_freq'))
  if extra:
    logging.warning('%s: ignoring %d unexpected tensors: %s', path, len(extra),
                    extra)
  if scan_layers:
    return config.replace(scan_layers=True), layout.stack_layers(params)
  return config, params


# Saving -----------------------------------------------------------------------


def _hf_tensors(config: TransformerConfig, params: Params,
                dtype: str | None) -> dict[str, np.ndarray]:
  """HF name -> contiguous numpy tensor, cast to dtype if given."""
  params = nn.unbox(params)
  if layout.is_stacked(params):  # scan_layers: HF files are per layer.
    params = layout.unstack_layers(jax.device_get(params))
  flat = {tuple(getattr(k, 'key', k) for k in kp): v
          for kp, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  spec = _spec(config)
  extra = sorted('/'.join(p) for p in set(flat) - {s[1] for s in spec})
  if extra:
    raise ValueError(f'params have entries with no HF tensor: {extra}')
  out = {}
  for hf_name, p, hf_shape, shape, transpose in spec:
    if p not in flat:
      raise ValueError(f'params lack {"/".join(p)} (HF tensor {hf_name})')
    x = np.asarray(jax.device_get(flat[p]))
    if x.shape != shape:
      raise ValueError(f'params {"/".join(p)} has shape {x.shape}, expected '
                       f'{shape} (HF tensor {hf_name})')
    x = x.reshape(hf_shape[::-1]).T if transpose else x.reshape(hf_shape)
    out[hf_name] = np.ascontiguousarray(
        x.astype(np.dtype(jnp.dtype(dtype))) if dtype else x)
  dt = out['model.embed_tokens.weight'].dtype
  for hf_name in _o_bias_names(config):
    out[hf_name] = np.zeros((config.embed_dim,), dt)
  return out


def _write(tmp: str, config: TransformerConfig, tensors: dict[str, np.ndarray],
           max_shard_bytes: int | None) -> None:
  """Writes config.json, generation_config.json and safetensors into tmp."""
  dtype_name = str(tensors['model.embed_tokens.weight'].dtype)
  hf = config_to_hf(config)
  hf['dtype'] = hf['torch_dtype'] = dtype_name
  with open(os.path.join(tmp, 'config.json'), 'w') as fp:
    json.dump(hf, fp, indent=2)
  gen = {k: getattr(config, k) for k in ('bos_token_id', 'eos_token_id')
         if getattr(config, k) is not None}
  with open(os.path.join(tmp, 'generation_config.json'), 'w') as fp:
    json.dump({'_from_model_config': True, **gen}, fp, indent=2)
  meta = {'format': 'pt'}
  if not max_shard_bytes:
    safetensors.numpy.save_file(
        tensors, os.path.join(tmp, 'model.safetensors'), metadata=meta)
    return
  shards, size = [{}], 0
  for name, x in tensors.items():
    if shards[-1] and size + x.nbytes > max_shard_bytes:
      shards.append({})
      size = 0
    shards[-1][name] = x
    size += x.nbytes
  weight_map = {}
  for i, shard in enumerate(shards):
    file = f'model-{i + 1:05d}-of-{len(shards):05d}.safetensors'
    safetensors.numpy.save_file(shard, os.path.join(tmp, file), metadata=meta)
    weight_map.update({name: file for name in shard})
  total = sum(x.nbytes for x in tensors.values())
  with open(os.path.join(tmp, _INDEX), 'w') as fp:
    json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map},
              fp, indent=2)


def save_checkpoint(path: str, config: TransformerConfig, params: Params, *,
                    dtype: str | None = None,
                    max_shard_bytes: int | None = None) -> None:
  """Writes an HF checkpoint directory that transformers loads.

  Params may be (sharded, fully addressable) jax arrays or numpy, boxed or
  not, per layer or stacked (`scan_layers`). dtype ('float32' | 'bfloat16' | 'float16') casts the tensors; None
  keeps theirs. With max_shard_bytes the tensors are split into
  model-0000i-of-0000N.safetensors plus an index. The directory is built
  beside `path` and renamed into place, so `path` is either the old or the
  complete new checkpoint.
  """
  path = os.path.abspath(os.fspath(path))
  if os.path.exists(path) and not os.path.isdir(path):
    raise FileExistsError(f'{path}: exists and is not a directory')
  tensors = _hf_tensors(config, params, dtype)
  parent, base = os.path.split(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f'.{base}.tmp-', dir=parent)
  try:
    _write(tmp, config, tensors, max_shard_bytes)
    if os.path.exists(path):
      old = tempfile.mkdtemp(prefix=f'.{base}.old-', dir=parent)
      os.replace(path, os.path.join(old, base))
      try:
        os.replace(tmp, path)
      except BaseException:
        os.replace(os.path.join(old, base), path)  # Put the old one back.
        raise
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.replace(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  logging.info('Saved %s checkpoint (%.1fM params) to %s', config.model_type,
               sum(x.size for x in tensors.values()) / 1e6, path)
