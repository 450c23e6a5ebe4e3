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

from jaxreason.data import paths
from jaxreason.file_modules import load_config
from jaxreason.train import run_config
from jaxreason.train.optim import make_schedule

REPO = pathlib.Path(__file__).resolve().parents[2]
ALL_CONFIGS = sorted(p for p in (REPO / 'configs').glob('*/*.py')
                     if p.name != '__init__.py')
# Evaluation configs: folder -> the module whose run(config, workdir) they
# drive (no training steps, no metrics.jsonl); tested separately below.
EVALS = {'math_eval': 'jaxreason.evals.math_eval'}
CONFIGS = [p for p in ALL_CONFIGS if p.parent.name not in EVALS]
EVAL_CONFIGS = [p for p in ALL_CONFIGS if p.parent.name in EVALS]

# Metrics each config's rows must hold (in at least one of the two rows).
TRAIN_METRICS = {'loss', 'grad_norm', 'param_norm', 'learning_rate'}
EXPECTED = {
    'sft': TRAIN_METRICS | {'accuracy', 'num_tokens'},
    'dpo': TRAIN_METRICS | {'rewards/accuracies', 'rewards/margins',
                            'rewards/chosen', 'rewards/rejected',
                            'logps/chosen', 'logps/rejected'},
    'grpo': TRAIN_METRICS | {'reward', 'reward_std', 'kl', 'ratio_mean',
                             'completion_length'},
    'thinkprm': TRAIN_METRICS | {'accuracy', 'num_tokens'},
    'aime/aime': {'loss', 'elbo', 'kl', 'recon', 'action_log_prob'},
    'aime/aime_v2': {'loss', 'grad_norm', 'aime/elbo', 'ac/actor_loss',
                     'ac/value_loss', 'eval_return'},
    # BCO: the inverse model's steps log idm/loss, the BC steps loss (the
    # policy on inferred actions) and bc_true/loss (on the true actions).
    'aime/bco': {'loss', 'grad_norm', 'idm/loss', 'bc_true/loss'},
    'aime/expert': {'loss', 'actor_loss', 'critic_loss', 'alpha',
                    'episode_return'},
    'aime/pretrain': {'loss', 'elbo', 'kl', 'recon'},
    'prm': TRAIN_METRICS | {'accuracy'},
    'subgoal': TRAIN_METRICS | {'accuracy'},
    # SFT of the tool model / of Hint-RFT's selected trajectories.
    'tir': TRAIN_METRICS | {'accuracy', 'num_tokens'},
    'hint_rft': TRAIN_METRICS | {'accuracy', 'num_tokens'},
    'inftythink': TRAIN_METRICS | {'accuracy', 'num_tokens'},
}
# Configs that evaluate rather than train: recipe.evaluate(config, workdir)
# returns {eval name: a ProcessBench-style result} and writes JSON + tables.
EVAL_RECIPES = ('processbench',)


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
  for method in ('beam_search', 'dvts'):
    if method not in config.methods:  # A benchmark's default: no verifier.
      continue
    per_problem = saved['per_problem'][method][str(max(config.ns))]
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
  if recipe_name == 'subgoal' and not hasattr(recipe.prover, 'check_proof'):
    pytest.skip('jaxreason.prover.check_proof (branch prover-check) absent')
  if recipe_name in EVAL_RECIPES:
    result = recipe.evaluate(config, str(tmp_path))
    assert result, 'no evaluation ran'
    for name, res in result.items():
      assert (tmp_path / f'processbench_{name}.json').exists()
      assert (tmp_path / f'processbench_{name}.md').exists()
      for sub in res['subsets'].values():
        for key in ('acc_erroneous', 'acc_correct', 'f1', 'oracle_f1'):
          assert 0.0 <= sub[key] <= 1.0, (name, sub)
        assert sub['oracle_f1'] >= sub['f1'] - 1e-12
    return
  if recipe_name in EVALUATIONS:
    source = config.data.get('source', 'synthetic')
    if source != 'synthetic' and not paths.data_dir(
        config.data.data_dir).exists():
      pytest.skip(f'benchmark data not found at {paths.data_dir()}')
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


@pytest.mark.parametrize('path', EVAL_CONFIGS,
                         ids=lambda p: f'{p.parent.name}/{p.name}')
def test_eval_config_runs_in_debug(path, tmp_path):
  config = load_config(path, 'debug')
  assert not config.policy, 'debug evaluates a random model'
  if config.benchmark != 'synthetic' and not paths.data_dir(
      config.data_dir).exists():
    pytest.skip(f'benchmark data not found at {paths.data_dir()}')
  module = importlib.import_module(EVALS[path.parent.name])
  result = module.run(config, str(tmp_path))
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved['metrics'] == result['metrics']
  assert 1 <= result['num_problems'] <= config.num_problems
  # Only problems the character tokenizer cannot encode are left out.
  assert result['num_records'] == config.num_problems
  assert result['num_problems'] + len(result['skipped_problems']) == (
      config.num_problems)
  assert result['n'] == config.n
  assert [p['n'] for p in result['curve']] == [1, 2, 4]
  for name, value in result['metrics'].items():
    assert 0.0 <= value <= 1.0, (name, value)
  for p in result['curve']:
    assert p['pass'] >= p['avg'] - 1e-9 and p['tokens'] <= p['n'] * (
        config.max_new_tokens)
    assert p['flops'] > 0
  rows = (tmp_path / 'problems.jsonl').read_text().splitlines()
  assert len(rows) == result['num_problems']
  assert all(len(json.loads(r)['gen_tokens']) == config.n for r in rows)
  for f in result['files'].values():
    assert pathlib.Path(f).stat().st_size > 0, f


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: str(
    p.relative_to(REPO / 'configs')))
def test_unknown_variant_is_named(path):
  """A typo in `--config=...:VARIANT` fails loudly, naming the variant."""
  with pytest.raises(ValueError, match='no_such_variant'):
    load_config(path, 'debug,no_such_variant')
