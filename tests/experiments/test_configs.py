"""Every config under configs/ runs two steps in its ':debug' variant.

(Evaluation configs, `EVALUATIONS`, run their whole ':debug' evaluation.)

Beyond "it runs": every logged number is finite, each recipe logs the
metrics its trainer promises, the learning rate is the configured schedule,
and the first step of a fresh model has its closed-form loss where there is
one (SFT: about log(vocab) for near-uniform logits; DPO: log 2 while the
policy equals its reference).
"""

import importlib
import json
import math
import pathlib

import pytest

from jaxreason.file_modules import load_config
from jaxreason.train import run_config
from jaxreason.train.optim import make_schedule

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / 'configs').glob('*/*.py')
                 if p.name != '__init__.py')

# Metrics each config's rows must hold (in at least one of the two rows).
TRAIN_METRICS = {'loss', 'grad_norm', 'param_norm', 'learning_rate'}
EXPECTED = {
    'sft': TRAIN_METRICS | {'accuracy', 'num_tokens'},
    'dpo': TRAIN_METRICS | {'rewards/accuracies', 'rewards/margins',
                            'rewards/chosen', 'rewards/rejected',
                            'logps/chosen', 'logps/rejected'},
    'grpo': TRAIN_METRICS | {'reward', 'reward_std', 'kl', 'ratio_mean',
                             'completion_length'},
    'aime/aime': {'loss', 'elbo', 'kl', 'recon', 'action_log_prob'},
    'aime/aime_v2': {'loss', 'grad_norm', 'aime/elbo', 'ac/actor_loss',
                     'ac/value_loss', 'eval_return'},
    # BCO: the inverse model's steps log idm/loss, the BC steps loss (the
    # policy on inferred actions) and bc_true/loss (on the true actions).
    'aime/bco': {'loss', 'grad_norm', 'idm/loss', 'bc_true/loss'},
    'aime/expert': {'loss', 'actor_loss', 'critic_loss', 'alpha',
                    'episode_return'},
    'aime/pretrain': {'loss', 'elbo', 'kl', 'recon'},
}


# Evaluation recipes: `run(config, workdir)` writes results, nothing trains.
EVALUATIONS = {'search_eval'}


def _check_evaluation(config, recipe, workdir):
  """A search evaluation: every method at every N, sane numbers, a plot."""
  result = recipe.run(config, str(workdir))
  saved = json.loads((workdir / recipe.RESULTS_FILE).read_text())
  assert (workdir / recipe.PLOT_FILE).stat().st_size > 0
  summary = saved['summary']
  assert set(summary) == set(config.methods)
  for method, by_n in summary.items():
    want = {'1'} if method == 'greedy' else {str(n) for n in config.ns}
    assert set(by_n) == want, (method, sorted(by_n))
    for row in by_n.values():
      assert 0.0 <= row['accuracy'] <= 1.0
      assert row['policy_tokens'] > 0 and row['prompt_tokens'] > 0
      assert row['tokens'] == pytest.approx(
          row['policy_tokens'] + row['prompt_tokens'] + row['verifier_tokens'])
      assert math.isfinite(row['flops']) and row['flops'] > 0
  n = config.data.num_eval
  assert result['num_problems'] == n
  per_problem = saved['per_problem']['beam_search'][str(max(config.ns))]
  assert len(per_problem) == n
  assert all(p['info']['finished'] <= max(config.ns) for p in per_problem)


def _expected_metrics(path):
  key = f'{path.parent.name}/{path.stem}'
  return EXPECTED[key] if key in EXPECTED else EXPECTED[path.parent.name]


@pytest.mark.parametrize('path', CONFIGS,
                         ids=lambda p: f'{p.parent.name}/{p.name}')
def test_config_runs_two_debug_steps(path, tmp_path):
  config = load_config(path, 'debug')
  recipe_name = path.parent.name
  recipe = importlib.import_module(f'jaxreason.recipes.{recipe_name}')
  if recipe_name in EVALUATIONS:
    _check_evaluation(config, recipe, tmp_path)
    return
  result = recipe.train(config, str(tmp_path))
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').open()]
  assert [r['step'] for r in rows] == [1, 2]
  for row in rows:
    bad = {k: v for k, v in row.items()
           if not isinstance(v, (int, float)) or not math.isfinite(v)}
    assert not bad, (row['step'], bad)
  missing = _expected_metrics(path) - set().union(*rows)
  assert not missing, (missing, sorted(set().union(*rows)))
  assert result['final_metrics']['loss'] == pytest.approx(rows[-1]['loss'])

  first = rows[0]
  if recipe_name in ('sft', 'dpo', 'grpo'):
    # A row is logged after the step's last optimizer update (GRPO makes
    # num_iterations updates per step), at the schedule's value for it.
    updates = config.get('num_iterations', 1)
    schedule = make_schedule(config.optim)
    for row in rows:
      assert row['learning_rate'] == pytest.approx(
          float(schedule(row['step'] * updates - 1)), rel=1e-6,
          abs=1e-12), row
  if recipe_name == 'sft':
    vocab = run_config.tokenizer_from_config(config.tokenizer).vocab_size
    assert first['loss'] == pytest.approx(math.log(vocab), abs=0.1)
    assert 0.0 <= first['accuracy'] <= 1.0
  elif recipe_name == 'dpo':
    # Policy == reference: every implicit reward is 0, the loss -log sigmoid(0).
    assert first['loss'] == pytest.approx(math.log(2.0), abs=1e-5)
    assert first['rewards/margins'] == pytest.approx(0.0, abs=1e-5)
    assert first['logps/chosen'] < 0 and first['logps/rejected'] < 0
  elif recipe_name == 'grpo':
    for row in rows:
      assert 0.0 <= row['reward'] <= 1.0
      assert 0.0 <= row['groups_all_equal'] <= 1.0
      assert 0 < row['completion_length'] <= config.max_new_tokens
      assert row['kl'] >= -1e-6  # The k3 estimator is non-negative.
  elif 'kl' in first:  # World-model ELBOs: KL terms are non-negative.
    assert first['kl'] >= 0.0
