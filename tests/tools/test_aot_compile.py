"""tools/aot_compile.py compiles the SFT step for a TPU topology on the CPU."""

import json
import pathlib

import pytest

from jaxreason.file_modules import load_file

REPO = pathlib.Path(__file__).resolve().parents[2]


aot = load_file(REPO / 'tools' / 'aot_compile.py')
synthetic = load_file(REPO / 'configs' / 'sft' / 'synthetic.py')


@pytest.fixture(scope='module', autouse=True)
def _needs_libtpu():
  try:
    aot.get_topology('v5e:2x2')
  except (ImportError, RuntimeError) as e:  # libtpu comes from the tpu extra.
    pytest.skip(f'TPU topology API unavailable (pip install -e .[tpu]): {e}')


def _config(**overrides):
  config = synthetic.get_config('debug')
  config.mesh = [('data', 1), ('fsdp', -1), ('tensor', 1)]
  return aot.apply_overrides(config, **overrides)


def test_debug_config_on_v5e_2x2():
  report = aot.compile_report(_config(), 'v5e:2x2')
  assert report['num_devices'] == 4
  assert report['device_kind'] == 'TPU v5 lite'
  assert report['mesh'] == {'data': 1, 'fsdp': 4, 'tensor': 1}
  mem = report['memory_per_device_bytes']
  for key in ('argument', 'output', 'temp', 'generated_code', 'total'):
    assert mem[key] > 0, (key, mem)
  assert report['hbm_per_device_bytes'] == 16 * 1024**3
  assert report['fits'] and report['compiler_oom'] is None
  # The state (params + 2 Adam moments, float32, fsdp over 4) is an argument.
  assert mem['argument'] >= 3 * 4 * report['param_count'] / 4
  assert report['flops_per_device_per_step'] > 0
  assert 'TPU v5 lite' in aot.format_report(report)
  json.dumps(report)  # --output writes it as JSON.


def test_over_hbm_reports_does_not_fit():
  # Float32 logits [B, T, V] alone, 512 * 8192 * 2**16 * 4 B over 4 devices,
  # need 256 GiB a device.
  config = _config(batch_size=512, seq_len=8192,
                   model_set=['vocab_size=65536'])
  report = aot.compile_report(config, 'v5e:2x2')
  assert not report['fits']
  assert 'RESOURCE_EXHAUSTED' in report['compiler_oom']
  assert report['memory_per_device_bytes']['total'] > 16 * 1024**3
  assert 'DOES NOT FIT' in aot.format_report(report)


def test_preset_replaces_model():
  config = _config(preset='qwen2.5-7b', seq_len=64, batch_size=4,
                   model_set=['dtype=bfloat16', 'remat="full"'])
  assert dict(config.model) == {'preset': 'qwen2.5-7b', 'dtype': 'bfloat16',
                                'remat': 'full'}
  assert (config.seq_len, config.batch_size) == (64, 4)


def test_scanned_layers_compile():
  """--scan_layers: the same step with stacked params compiles for TPU."""
  config = _config(scan_layers=True)
  assert config.model['scan_layers'] is True
  report = aot.compile_report(config, 'v5e:2x2')
  unrolled = aot.compile_report(_config(), 'v5e:2x2')
  assert report['scan_layers'] and not unrolled['scan_layers']
  assert report['param_count'] == unrolled['param_count']
  assert report['fits'] and report['compile_seconds'] > 0
  assert 'scanned' in aot.format_report(report)


def test_unknown_topology_names_it():
  with pytest.raises(ValueError, match='v9z:2x2') as e:
    aot.get_topology('v9z:2x2')
  assert 'v5e:2x2' in str(e.value)  # Lists examples.
