"""tools/bench_grpo.py: a tiny run; the JSON's parts add up to the step."""

import json
import pathlib

from absl import app
import pytest

from jaxreason.file_modules import load_file

REPO = pathlib.Path(__file__).resolve().parents[2]

bench = load_file(REPO / 'tools' / 'bench_grpo.py')

PARTS = ('rollout_s', 'batch_s', 'update_s')


def _argv(tmp_path, *extra):
  return ['bench_grpo', '--policy=', '--prompts_per_step=2', '--group_size=4',
          '--max_new_tokens=8', '--warmup=1', '--steps=2',
          '--config.data.num_train=64', f'--output={tmp_path / "out.json"}',
          *extra]


def _check_step(r):
  for k in PARTS:  # beta > 0: the update includes the reference forward.
    assert r[k] > 0, (k, r)
  assert 'reference_s' not in r  # Inside the jitted step now.
  assert r['other_s'] >= 0, r
  # Disjoint intervals inside the step: they cannot exceed its wall time.
  assert sum(r[k] for k in PARTS) <= r['wall_s'] * (1 + 1e-6) + 1e-6, r
  assert sum(r[k] for k in PARTS) + r['other_s'] == pytest.approx(r['wall_s'])
  split = r['rollout_split']
  assert split['prefill_s'] > 0 and split['decode_s'] > 0, split
  assert sum(split.values()) == pytest.approx(r['rollout_s'])
  assert 0 < r['generated_tokens'] <= 8 * 8
  assert r['rollout_tok_s'] == pytest.approx(r['generated_tokens']
                                             / r['rollout_s'])
  # The plain sampler ran the same rows with the same rng: same tokens.
  assert r['same_tokens'], r
  assert r['plain']['generated_tokens'] == r['generated_tokens']
  assert r['plain']['tok_s'] > 0
  assert r['plain_fixed_length']['generated_tokens'] == 8 * 8
  assert r['rollout_over_plain_tok_s'] == pytest.approx(
      r['rollout_tok_s'] / r['plain']['tok_s'])


@pytest.mark.slow  # Compiles a GRPO step: ~15 s on an idle 2-core CPU.
def test_tiny_run_writes_consistent_json(tmp_path, capsys):
  results = bench.main(_argv(tmp_path))
  written = json.loads((tmp_path / 'out.json').read_text())
  for key in ('tool', 'note', 'machine', 'flags', 'config', 'shapes', 'setup',
              'warmup', 'timed', 'mean', 'compile'):
    assert key in written, key
  assert 'contention' in written['note']
  assert written['machine']['jax'] and written['machine']['cpu_count']
  assert written['flags']['beta'] == 0.04 and written['flags']['steps'] == 2
  assert written['config']['beta'] == 0.04
  assert written['config']['data']['num_train'] == 64
  shapes = written['shapes']
  assert (shapes['rows'], shapes['max_new_tokens']) == (8, 8)
  assert shapes['training'] == 'full fine-tuning'
  assert [r['step'] for r in written['warmup']] == [0]
  assert [r['step'] for r in written['timed']] == [1, 2]
  for r in written['timed'] + written['warmup']:
    _check_step(r)
  # Compilation happened in the warmup, reported apart from the timed steps.
  assert written['compile']['warmup_compile_s'] > 0
  assert written['compile']['sampler_traced_during_timing'].get(
      'decode_loop', 0) == 0
  mean = written['mean']
  assert mean['wall_s'] == pytest.approx(
      sum(r['wall_s'] for r in written['timed']) / 2)
  assert sum(mean[k] for k in PARTS) <= mean['wall_s'] * (1 + 1e-6) + 1e-6
  assert mean['rollout_tok_s'] > 0 and mean['plain']['tok_s'] > 0
  assert mean['same_tokens_all_steps']
  assert results['mean']['rollout_over_plain_tok_s'] == (
      mean['rollout_over_plain_tok_s'])
  out = capsys.readouterr().out
  assert '| **mean** |' in out and 'rollout/plain' in out


def test_flags_resolve_into_the_config():
  fv = bench.flags.FlagValues()
  argv = ['x', '--lora', '--beta=0', '--group_size=3',
          '--config.prompts_per_step=5']
  bench._define_flags(fv, argv)  # pylint: disable=protected-access
  fv(argv)
  c = bench.resolve_config(fv)
  assert (c.lora.rank, c.beta, c.group_size, c.prompts_per_step) == (
      8, 0.0, 3, 5)
  assert c.max_new_tokens == 64 and c.policy == ''  # The config's defaults.
  with pytest.raises(app.UsageError, match='steps'):
    bench.main(['x', '--steps=0'])
