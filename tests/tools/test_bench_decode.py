"""tools/bench_decode.py: a one-case run on a tiny shape, resume, the bound."""

import json
import pathlib

from absl import app
import pytest

from jaxreason.file_modules import load_file

REPO = pathlib.Path(__file__).resolve().parents[2]


bench = load_file(REPO / 'tools' / 'bench_decode.py')


def _argv(tmp_path, *extra):
  return ['bench_decode', '--preset=tiny', '--model_set=vocab_size=256',
          '--cases=batch1', '--frameworks=jaxreason', '--prompt_len=8',
          '--new_tokens=8', '--bandwidth_mib=8',
          f'--ckpt_dir={tmp_path / "ckpt"}',
          f'--output={tmp_path / "out.json"}', *extra]


def test_tiny_batch1_run_and_resume(tmp_path, capsys):
  results = bench.main(_argv(tmp_path))
  r = results['cases']['batch1']['results']['jaxreason']
  assert 'error' not in r, r
  assert r['generated_tokens'] == r['expected_tokens'] == 8
  assert r['tok_s'] > 0 and r['decode_tok_s'] >= r['tok_s']
  # Warm-up compiled everything the timed run used.
  assert not any(r['traced_during_timing'].values()), r
  assert r['cache_size'] >= 16
  written = json.loads((tmp_path / 'out.json').read_text())
  assert written['cases']['batch1']['results']['jaxreason']['tok_s'] == (
      r['tok_s'])
  bound = written['ratios']['batch1']['bandwidth_bound']
  assert bound['jaxreason_share'] == pytest.approx(
      r['decode_tok_s'] / bound['bound_tok_s'])
  assert bound['jaxreason_share_of_matvec_bound'] == pytest.approx(
      r['decode_tok_s'] / bound['matvec_bound_tok_s'])
  assert written['ratios']['batch1']['jaxreason_over_tunix_tok_s'] is None
  goals = {g['goal']: g['status'] for g in written['goals']}
  assert goals['batch1 tok/s >= tunix'] == 'n/a'
  assert '| batch1 | jaxreason | 8/8 |' in capsys.readouterr().out

  # Same settings: the finished pair is kept, not rerun.
  again = bench.main(_argv(tmp_path))
  assert again['cases']['batch1']['results']['jaxreason'] == json.loads(
      json.dumps(r))
  assert 'done (resumed)' in capsys.readouterr().out
  # Other settings: refused rather than mixed into the same file.
  with pytest.raises(app.UsageError, match='other settings'):
    bench.main(_argv(tmp_path, '--new_tokens=4'))


def test_bandwidth_bound_formula():
  config = bench.TransformerConfig.from_preset('qwen2.5-0.5b')
  b = bench.bandwidth_bound(config, 20e9, 'float32', 128, 127)
  weights = config.num_params() * 4
  kv = 2 * 24 * 2 * 64 * 4 * (128 + 64)  # K,V x layers x kv heads x dim.
  assert b['bytes_per_token'] == weights + kv
  assert b['bound_tok_s'] == pytest.approx(20e9 / (weights + kv))
  assert 9 < b['bound_tok_s'] < 11  # ~2 GB of float32 weights.


def test_case_plans():
  fv = bench.flags.FlagValues()
  bench._define_flags(fv)  # pylint: disable=protected-access
  fv(['x', '--long_new=256', '--long_window=64', '--long_cache=512'])
  assert bench.case_plan('bf16_batch8', fv)['dtype'] == 'bfloat16'
  assert bench.case_plan('batch32', fv)['batch'] == 32
  assert bench.case_plan('long', fv)['cache_size'] == 512
  shared = bench.case_plan('shared_prefix', fv)
  assert 'jaxreason_repeated' in shared['frameworks']
  with pytest.raises(app.UsageError, match='unknown case'):
    bench.case_plan('batchy', fv)


def test_matvec_shapes_cover_every_weight_matrix():
  # Qwen2.5-0.5B: tied embedding (read once, by the output projection), so the
  # products cover every parameter except biases and norm scales.
  config = bench.TransformerConfig.from_preset('qwen2.5-0.5b')
  shapes = bench.matvec_shapes(config)
  assert shapes[-1] == (151936, 896, True)  # Tied: x @ embedding.T.
  matrices = sum(a * b for a, b, _ in shapes)
  d, kv = 896, 2 * 64
  per_layer_vectors = (d + 2 * kv) + 2 * d  # q/k/v biases, two RMSNorms.
  assert config.num_params() - matrices == 24 * per_layer_vectors + d


def test_matvec_chain_rate_is_bytes_over_seconds():
  config = bench.TransformerConfig.from_preset('tiny')
  r = bench.measure_matvec_chain(config, 'float32', reps=1)
  assert r['weight_bytes'] == 4 * sum(a * b for a, b, _ in
                                      bench.matvec_shapes(config))
  assert r['bytes_per_s'] == pytest.approx(r['weight_bytes'] / r['seconds'])
