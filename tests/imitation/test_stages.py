"""The study's stages end to end in ':debug' size: ablations and resume."""

import json
import pathlib

import pytest

from jaxreason.file_modules import load_config
from jaxreason.imitation import episodes as ep_lib
from jaxreason.recipes import aime

REPO = pathlib.Path(__file__).resolve().parents[2]


def _config(name, arg):
  return load_config(REPO / 'configs' / 'aime' / f'{name}.py', arg)


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['adversarial', 'no_reg', 'no_reward'])
def test_aime_v2_ablations_run(variant, tmp_path):
  config = _config('aime', f'walker-stand,v2,{variant},debug')
  result = aime.train(config, str(tmp_path))
  m = result['final_metrics']
  assert ('ac/actor_loss' in m) == (variant != 'no_reward')
  assert ('disc/loss' in m) == (variant == 'adversarial')
  # The evaluation is what result.json says it is: config.eval_episodes
  # returns, their mean, normalised by the (stand-in) demos' mean return.
  ev = result['eval']
  assert len(ev['returns']) == config.eval_episodes
  assert ev['return'] == pytest.approx(sum(ev['returns']) / len(ev['returns']))
  info = json.loads((tmp_path / 'data' / 'info.json').read_text())
  assert ev['normalised_return'] == pytest.approx(
      ev['return'] / info['demo_return'])
  assert result['curve'][-1] == ev
  assert (tmp_path / 'policy.msgpack').exists()
  assert json.loads((tmp_path / 'result.json').read_text())['eval'] == ev


@pytest.mark.slow
def test_aime_v2_resumes_with_its_replay_buffer(tmp_path):
  config = _config('aime', 'walker-stand,v2,debug')
  config.total_steps = 1
  aime.train(config, str(tmp_path))
  buffer = ep_lib.ReplayBuffer().restore(str(tmp_path / 'replay'), step=1)
  assert len(buffer) == 1
  config.total_steps = 3  # As if the first run had been killed after one.
  aime.train(config, str(tmp_path))
  buffer = ep_lib.ReplayBuffer().restore(str(tmp_path / 'replay'), step=3)
  assert len(buffer) == 3  # The restored episode plus two new ones.
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').open()]
  assert [r['step'] for r in rows] == [1, 2, 3]


def test_unknown_stage_and_task_are_named(tmp_path):
  config = _config('bco', 'walker-stand,debug')
  config.stage = 'nope'
  with pytest.raises(ValueError, match='nope'):
    aime.train(config, str(tmp_path))
  config = _config('bco', 'walker-run,debug')
  config.task = 'walker-flies'
  with pytest.raises(ValueError, match='walker-flies.*walker-stand'):
    aime.train(config, str(tmp_path))


@pytest.mark.slow
def test_world_model_step_is_data_parallel(tmp_path):
  """Batch split over 8 devices ('data') gives the single-device result."""
  results = []
  for n in (1, 8):
    config = _config('pretrain', 'walker-stand,debug')
    # data=1 leaves the batch whole on every device (the rest on 'fsdp',
    # unused here); data=8 splits it.
    config.mesh = (('data', n), ('fsdp', -1 if n == 1 else 1), ('tensor', 1))
    config.data_dir = str(tmp_path / 'data_src')
    if n == 1:  # Shared stand-in data: collected by the first run.
      config.data_dir = ''
    results.append(aime.train(config, str(tmp_path / f'mesh{n}')))
    if n == 1:
      (tmp_path / 'data_src').symlink_to(tmp_path / 'mesh1' / 'data')
  a, b = (r['final_metrics'] for r in results)
  for k in ('loss', 'recon', 'kl', 'grad_norm'):
    assert a[k] == pytest.approx(b[k], rel=1e-4), k
