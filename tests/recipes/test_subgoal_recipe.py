"""recipes/subgoal.py in ':debug' with a scripted checker: the arms' accounting."""

import json
import pathlib

import pytest

from jaxreason.file_modules import load_config
from jaxreason.recipes import subgoal

REPO = pathlib.Path(__file__).resolve().parents[2]


class _Report:

  def __init__(self, proved):
    self.proved, self.failed_step, self.reason = proved, None, 'scripted'


@pytest.mark.slow
def test_debug_run_spends_matched_checker_calls(tmp_path, monkeypatch):
  calls = []

  def check_proof(variables, hyps, goal, steps, *, timeout_s):
    calls.append(goal)
    return _Report(steps[-1] == goal)  # A random model rarely writes this.

  monkeypatch.setattr(subgoal.prover, 'check_proof', check_proof,
                      raising=False)
  config = load_config(REPO / 'configs/subgoal/synthetic.py', 'debug')
  config.rounds = 2
  config.round_steps = 1
  result = subgoal.train(config, str(tmp_path))
  saved = json.loads((tmp_path / subgoal.SUMMARY_FILE).read_text())
  assert saved['arms'] == result['arms']
  assert (tmp_path / subgoal.PLOT_FILE).stat().st_size > 0
  ei, base = result['arms']['expert_iteration'], result['arms']['sampling']
  assert [r['round'] for r in ei] == [r['round'] for r in base] == [0, 1, 2]
  n_held, n_pool = config.data.num_eval, config.data.num_pool
  assert ei[0]['checker_calls'] == n_held * config.eval_attempts
  for e, b in zip(ei[1:], base[1:]):
    # Expert iteration: num_keep per pool problem + the evaluation.
    assert e['checker_calls'] == (n_pool * config.num_keep
                                  + n_held * config.eval_attempts)
    # Sampling only: the same calls in whole attempts per problem.
    assert b['checker_calls'] == (e['checker_calls'] // n_held) * n_held
    assert b['cumulative_proved_share'] >= base[0]['cumulative_proved_share']
  assert ei[-1]['cumulative_checker_calls'] == sum(
      r['checker_calls'] for r in ei)
  # Every real checker call went through the cache exactly once per text.
  assert result['z3_calls'] == len(calls) > 0
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').open()]
  assert [r['step'] for r in rows] == [1, 2, 3]


@pytest.mark.slow
def test_killed_run_resumes_after_its_last_round(tmp_path, monkeypatch):
  """Killed in round 2, started again: the same rows as a run never killed."""
  monkeypatch.setattr(subgoal.prover, 'check_proof',
                      lambda v, h, goal, steps, *, timeout_s: _Report(
                          steps[-1] == goal), raising=False)
  config = load_config(REPO / 'configs/subgoal/synthetic.py', 'debug')
  config.rounds = 2
  config.round_steps = 2
  straight = subgoal.train(config, str(tmp_path / 'straight'))

  real = subgoal.ei.select_and_verify
  calls = []

  def dies_in_round_two(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise KeyboardInterrupt('killed')
    return real(*args, **kwargs)

  monkeypatch.setattr(subgoal.ei, 'select_and_verify', dies_in_round_two)
  workdir = tmp_path / 'killed'
  with pytest.raises(KeyboardInterrupt):
    subgoal.train(config, str(workdir))
  assert not (workdir / subgoal.SUMMARY_FILE).exists()
  monkeypatch.setattr(subgoal.ei, 'select_and_verify', real)

  # A changed schedule cannot resume (the round ends move).
  changed = load_config(REPO / 'configs/subgoal/synthetic.py', 'debug')
  changed.rounds, changed.round_steps = 2, 3
  with pytest.raises(ValueError, match='round_steps=3'):
    subgoal.train(changed, str(workdir))

  resumed = subgoal.train(config, str(workdir))
  seed_and_round_one = config.seed_steps + config.round_steps
  assert resumed['resumed_from_step'] == seed_and_round_one
  assert straight['resumed_from_step'] is None
  assert resumed['arms'] == straight['arms']
  assert len(calls) == 2  # Round 1 was not redone.
