"""HF checkpoint conversion, checked against transformers' own torch models."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy

from jaxreason.models import hf
from jaxreason.models.transformer import RopeScaling
from jaxreason.models.transformer import Transformer
from jaxreason.models.transformer import TransformerConfig
from jaxreason.models.transformer import init_params

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

TOL = 1e-4
_TINY = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=64, rms_norm_eps=1e-5)
_V5 = int(transformers.__version__.split('.')[0]) >= 5
_LLAMA3 = {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0,
           'high_freq_factor': 4.0, 'original_max_position_embeddings': 16}
# name -> (config class, config overrides, max_shard_size, sequence length).
CASES = {
    'qwen2_tied': ('Qwen2Config', dict(tie_word_embeddings=True), None, 16),
    'qwen2_untied': ('Qwen2Config', dict(tie_word_embeddings=False), None, 16),
    'qwen2_sharded': ('Qwen2Config', dict(tie_word_embeddings=False), '20KB',
                      16),
    'llama': ('LlamaConfig', dict(attention_bias=False, rope_theta=500.0),
              None, 16),
    'llama_bias_hd16': ('LlamaConfig', dict(
        attention_bias=True, head_dim=16, tie_word_embeddings=True), None, 16),
    'llama3_rope': ('LlamaConfig', dict(
        max_position_embeddings=64,
        **({'rope_parameters': {**_LLAMA3, 'rope_theta': 10000.0}} if _V5
           else {'rope_scaling': _LLAMA3})), None, 48),
}


def _randomize(model: torch.nn.Module, seed: int) -> None:
  """Every weight random (biases and norms too), o_proj biases zero."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      if 'o_proj.bias' in name:
        p.zero_()
      elif 'norm' in name:
        p.copy_(1.0 + 0.2 * noise)
      else:
        p.copy_(0.2 * noise)


def _tokens(seq_len: int, vocab: int = 128) -> np.ndarray:
  return np.random.default_rng(seq_len).integers(0, vocab, (2, seq_len))


def _hf_logits(model, tokens: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    return model(torch.as_tensor(tokens)).logits.float().numpy()


def _our_logits(config, params, tokens: np.ndarray) -> np.ndarray:
  return np.asarray(Transformer(config).apply(
      {'params': params}, jnp.asarray(tokens, jnp.int32)))


@pytest.fixture(scope='module', params=sorted(CASES))
def hf_case(request, tmp_path_factory):
  cls_name, overrides, shard, seq_len = CASES[request.param]
  config = getattr(transformers, cls_name)(
      **{**_TINY, **overrides}, attn_implementation='eager')
  model = transformers.AutoModelForCausalLM.from_config(
      config, attn_implementation='eager').eval()
  _randomize(model, seed=len(request.param))
  path = str(tmp_path_factory.mktemp(request.param))
  kw = {'max_shard_size': shard} if shard else {}
  model.save_pretrained(path, **kw)
  return request.param, path, model, seq_len


@pytest.fixture(scope='module')
def qwen_dir(tmp_path_factory):
  config = transformers.Qwen2Config(**_TINY)
  model = transformers.Qwen2ForCausalLM(config)
  path = str(tmp_path_factory.mktemp('qwen_errors'))
  model.save_pretrained(path)
  return path


def test_load_matches_hf_logits(hf_case):
  name, path, model, seq_len = hf_case
  if name == 'qwen2_sharded':
    assert os.path.exists(os.path.join(path, 'model.safetensors.index.json'))
  config, params = hf.load_checkpoint(path)
  assert config.model_type == name.split('_')[0][:5]
  expected = jax.tree.structure(init_params(config, jax.random.key(0)))
  assert jax.tree.structure(params) == expected
  tokens = _tokens(seq_len)
  ours, ref = _our_logits(config, params, tokens), _hf_logits(model, tokens)
  diff = np.abs(ours - ref).max()
  print(f'{name}: max |logit diff| = {diff:.2e} (max |logit| '
        f'{np.abs(ref).max():.2f})')
  assert diff <= TOL
  # The scanned model (stacked layers) loads the same function.
  scan_config, scan_params = hf.load_checkpoint(path, scan_layers=True)
  assert scan_config == config.replace(scan_layers=True)
  assert scan_params['layers']['mlp']['up_proj']['kernel'].shape[0] == 2
  scan_diff = np.abs(_our_logits(scan_config, scan_params, tokens) - ref).max()
  assert scan_diff <= TOL, scan_diff
  if name == 'llama3_rope':  # The scaling must matter at these positions.
    assert config.rope_scaling == RopeScaling(8.0, 1.0, 4.0, 16)
    plain = _our_logits(config.replace(rope_scaling=None), params, tokens)
    assert np.abs(plain - ref).max() > 100 * TOL


def _random_params(config: TransformerConfig, seed: int = 0):
  params = init_params(config.replace(init_std=0.2), jax.random.key(seed))
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  return jax.tree.unflatten(treedef, [
      x + 0.2 * jax.random.normal(k, x.shape, x.dtype)
      for x, k in zip(leaves, keys)])


def _shard(params):
  """Puts leaves on a mesh of all devices, split on axis 0 where it divides."""
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('d',))
  spec = lambda x: jax.sharding.PartitionSpec(
      'd' if x.shape[0] % len(jax.devices()) == 0 else None)
  return jax.tree.map(lambda x: jax.device_put(
      x, jax.sharding.NamedSharding(mesh, spec(x))), params)


ROUND_TRIP = {
    'tiny': TransformerConfig.from_preset('tiny'),
    'llama_tied_rope': TransformerConfig.from_preset(
        'tiny', model_type='llama', qkv_bias=False, tie_embeddings=True,
        head_dim=16, rope_theta=1000.0, rope_scaling=RopeScaling(8.0, 1.0, 4.0,
                                                                 16),
        max_position_embeddings=64, bos_token_id=1, eos_token_id=2),
    'llama_bias': TransformerConfig.from_preset('tiny', model_type='llama'),
    'tiny_scan': TransformerConfig.from_preset('tiny', scan_layers=True),
}


@pytest.mark.parametrize('name', sorted(ROUND_TRIP))
@pytest.mark.parametrize('shard_bytes', [None, 8192])
def test_save_loads_in_hf(tmp_path, name, shard_bytes):
  config = ROUND_TRIP[name]
  params = _shard(_random_params(config))
  path = str(tmp_path / 'ckpt')
  hf.save_checkpoint(path, config, params, max_shard_bytes=shard_bytes)
  files = os.listdir(path)
  assert ('model.safetensors.index.json' in files) == bool(shard_bytes)
  model, info = transformers.AutoModelForCausalLM.from_pretrained(
      path, attn_implementation='eager', output_loading_info=True)
  assert not any(info.get(k) for k in ('missing_keys', 'unexpected_keys',
                                        'mismatched_keys')), info
  arch = {'qwen2': 'Qwen2ForCausalLM', 'llama': 'LlamaForCausalLM'}
  assert type(model).__name__ == arch[config.model_type]
  tokens = _tokens(48, config.vocab_size)
  ours, ref = _our_logits(config, params, tokens), _hf_logits(model, tokens)
  diff = np.abs(ours - ref).max()
  print(f'round trip {name} shard={shard_bytes}: max |logit diff| = '
        f'{diff:.2e} (max |logit| {np.abs(ref).max():.2f})')
  assert diff <= TOL
  config2, params2 = hf.load_checkpoint(path, scan_layers=config.scan_layers)
  assert config2 == config.replace(init_std=config2.init_std)
  jax.tree.map(np.testing.assert_array_equal, params2,
               jax.tree.map(np.asarray, params))
  with open(os.path.join(path, 'generation_config.json')) as fp:
    gen = json.load(fp)
  assert gen.get('eos_token_id') == config.eos_token_id


def _header_dtypes(path: str) -> set[str]:
  with safetensors.safe_open(os.path.join(path, 'model.safetensors'),
                             framework='numpy') as f:
    return {f.get_slice(k).get_dtype() for k in f.keys()}


def test_bf16_save_loads_in_hf(tmp_path):
  config = ROUND_TRIP['tiny']
  params = _random_params(config)
  path = str(tmp_path / 'bf16')
  hf.save_checkpoint(path, config, params, dtype='bfloat16')
  assert _header_dtypes(path) == {'BF16'}
  model = transformers.AutoModelForCausalLM.from_pretrained(
      path, dtype=torch.bfloat16)
  assert model.dtype == torch.bfloat16
  emb = np.asarray(params['embed_tokens']['embedding']).astype(
      ml_dtypes.bfloat16).astype(np.float32)
  np.testing.assert_array_equal(
      model.model.embed_tokens.weight.float().detach().numpy(), emb)
  # Same bf16 weights, float32 compute on both sides.
  model32 = transformers.AutoModelForCausalLM.from_pretrained(
      path, dtype=torch.float32, attn_implementation='eager')
  config32, params32 = hf.load_checkpoint(path)
  np.testing.assert_array_equal(params32['embed_tokens']['embedding'], emb)
  tokens = _tokens(16, config.vocab_size)
  diff = np.abs(_our_logits(config32, params32, tokens)
                - _hf_logits(model32, tokens)).max()
  print(f'bf16 checkpoint, f32 compute: max |logit diff| = {diff:.2e}')
  assert diff <= TOL
  _, params_bf16 = hf.load_checkpoint(path, param_dtype='bfloat16')
  assert {x.dtype for x in jax.tree.leaves(params_bf16)} == {
      np.dtype(ml_dtypes.bfloat16)}
  # bf16 params saved as they are stay BF16.
  config_bf16 = config.replace(param_dtype='bfloat16')
  hf.save_checkpoint(path, config_bf16, params_bf16)  # Replaces `path`.
  assert _header_dtypes(path) == {'BF16'}
  with open(os.path.join(path, 'config.json')) as fp:
    assert json.load(fp)['dtype'] == 'bfloat16'


def test_save_is_atomic(tmp_path):
  config = ROUND_TRIP['tiny']
  params = _random_params(config)
  path = str(tmp_path / 'ckpt')
  hf.save_checkpoint(path, config, params, max_shard_bytes=8192)
  hf.save_checkpoint(path, config, params)  # Old shards must disappear.
  assert sorted(os.listdir(path)) == [
      'config.json', 'generation_config.json', 'model.safetensors']
  before = open(os.path.join(path, 'model.safetensors'), 'rb').read()
  bad = jax.tree.map(lambda x: x, params)
  del bad['layers_1']['mlp']['up_proj']
  with pytest.raises(ValueError, match='layers_1/mlp/up_proj/kernel'):
    hf.save_checkpoint(path, config, bad)
  assert open(os.path.join(path, 'model.safetensors'), 'rb').read() == before
  assert os.listdir(tmp_path) == ['ckpt']  # No temporary directories left.


def _rewrite(path: str, edit) -> str:
  """Copies a checkpoint, applies edit(tensors) to model.safetensors."""
  file = os.path.join(path, 'model.safetensors')
  tensors = safetensors.numpy.load_file(file)
  edit(tensors)
  safetensors.numpy.save_file(tensors, file, metadata={'format': 'pt'})
  return file


@pytest.fixture
def broken(qwen_dir, tmp_path):
  path = str(tmp_path / 'ckpt')
  shutil.copytree(qwen_dir, path)
  return path


def test_error_missing_paths(broken, tmp_path):
  with pytest.raises(FileNotFoundError, match='nowhere'):
    hf.load_checkpoint(str(tmp_path / 'nowhere'))
  os.remove(os.path.join(broken, 'model.safetensors'))
  with pytest.raises(FileNotFoundError, match='model.safetensors'):
    hf.load_checkpoint(broken)
  os.remove(os.path.join(broken, 'config.json'))
  with pytest.raises(FileNotFoundError, match='config.json'):
    hf.load_checkpoint(broken)


def test_error_missing_tensor(broken):
  name = 'model.layers.1.mlp.up_proj.weight'
  _rewrite(broken, lambda t: t.pop(name))
  with pytest.raises(ValueError, match=rf'{name}.*model\.safetensors'):
    hf.load_checkpoint(broken)


def test_error_wrong_shape(broken):
  name = 'model.layers.0.self_attn.k_proj.weight'
  _rewrite(broken, lambda t: t.update({name: np.zeros((8, 32), np.float32)}))
  with pytest.raises(ValueError, match=rf'model\.safetensors.*{name}.*'
                     r'\(8, 32\).*\(16, 32\)'):
    hf.load_checkpoint(broken)


def test_error_unsupported_dtype(broken):
  name = 'model.norm.weight'
  _rewrite(broken, lambda t: t.update({name: np.ones(32, np.int8)}))
  with pytest.raises(ValueError, match=rf'model\.safetensors.*{name}.*I8'):
    hf.load_checkpoint(broken)


def test_extra_tensors_warn(broken, caplog):
  def add(t):
    t['model.layers.0.self_attn.rotary_emb.inv_freq'] = np.ones(4, np.float32)
    t['model.extra.weight'] = np.ones(3, np.float32)
  _rewrite(broken, add)
  hf.load_checkpoint(broken)
  assert 'model.extra.weight' in caplog.text
  assert 'inv_freq' not in caplog.text


def test_error_nonzero_o_proj_bias(tmp_path):
  config = ROUND_TRIP['llama_bias']
  path = str(tmp_path / 'ckpt')
  hf.save_checkpoint(path, config, _random_params(config))
  name = 'model.layers.1.self_attn.o_proj.bias'
  _rewrite(path, lambda t: t.update({name: np.ones(32, np.float32)}))
  with pytest.raises(ValueError, match=name):
    hf.load_checkpoint(path)


def test_config_errors():
  base = hf.config_to_hf(TransformerConfig.from_preset('tiny'))
  with pytest.raises(ValueError, match=r"config\.json.*'gpt2'.*qwen2.*llama"):
    hf.config_from_hf({**base, 'model_type': 'gpt2'})
  for field in ('rope_scaling', 'rope_parameters'):
    bad = {**base, 'rope_scaling': None,
           field: {'rope_type': 'yarn', 'factor': 4.0}}
    with pytest.raises(ValueError, match=rf'config\.json.*{field}.*yarn'):
      hf.config_from_hf(bad)


def test_config_layouts():
  """transformers-4 and -5 layouts of the same config read the same."""
  v4 = {**_TINY, 'model_type': 'llama', 'rope_theta': 5e5,
        'rope_scaling': {'type': 'llama3', **{
            k: v for k, v in _LLAMA3.items() if k != 'rope_type'}},
        'head_dim': 16, 'eos_token_id': [5, 6]}
  v5 = {**_TINY, 'model_type': 'llama', 'head_dim': 16, 'eos_token_id': 5,
        'rope_parameters': {**_LLAMA3, 'rope_theta': 5e5}}
  c4, c5 = hf.config_from_hf(v4), hf.config_from_hf(v5)
  assert c4 == c5
  assert (c4.rope_theta, c4.head_size, c4.qkv_bias) == (5e5, 16, False)
  assert hf.config_from_hf(hf.config_to_hf(c4)) == c4
  mistral = hf.config_from_hf({**v5, 'model_type': 'mistral',
                               'sliding_window': None})
  assert mistral == c5
