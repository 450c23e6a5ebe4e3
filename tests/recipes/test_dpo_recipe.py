"""DPO: pairs are (verified right, policy's own wrong); the loss falls; resume."""

import importlib.util
import json
import math
import pathlib

import numpy as np
import pytest

from jaxreason.data import sources, synthetic
from jaxreason.recipes import dpo
from jaxreason.recipes.grpo import load_policy_or_init
from jaxreason.rewards import task_rewards
from jaxreason.sampling import score

REPO = pathlib.Path(__file__).resolve().parents[2]


def _config(**overrides):
  spec = importlib.util.spec_from_file_location(
      'dpo_cfg', REPO / 'configs/dpo/synthetic.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config('debug')
  c.data.num_eval = 0  # No evaluation: the debug config test covers it.
  for k, v in overrides.items():
    c[k] = v
  return c


def test_pairs_chosen_verified_right_rejected_policy_wrong():
  c = _config()
  model_cfg, params, tok = load_policy_or_init(c)
  train, _ = sources.preference_records(c.data)
  # The recipe test's prompts and shapes: the sampler compiles once.
  recs = [dict(r) for r in train[:8]]
  # Record 1: a wrong candidate first; the verified one must be chosen.
  wrong = recs[1]['completion'].replace(
      '{' + recs[1]['answer'] + '}',
      '{' + str((int(recs[1]['answer']) + 1) % 10) + '}')
  recs[1]['chosen'] = [wrong, recs[1]['completion']]
  recs[2]['chosen'] = ['no box']  # Nothing verifies: skipped.
  synth = task_rewards.make_reward_fn(c.reward)

  def reward_fn(texts, records):  # Record 3: the policy is always right.
    out = synth(texts, records)
    return np.where([r['prompt'] == recs[3]['prompt'] for r in records], 1.0,
                    out)

  pairs, stats = dpo.build_pairs(
      params, model_cfg, tok, recs, reward_fn,
      num_candidates=c.num_candidates, max_new_tokens=c.max_new_tokens,
      seed=0, max_pairs_per_prompt=2, batch_prompts=c.sample_batch_prompts)
  assert stats['skipped_no_verified_chosen'] == 1
  assert stats['skipped_no_wrong_sample'] == 1
  assert {p.index for p in pairs} == {0, 1, 4, 5, 6, 7}
  assert stats['pairs'] == len(pairs) == 12  # 2 distinct wrong samples each.
  for p in pairs:
    problem = recs[p.index]['problem']
    assert synthetic.check_solution(problem, p.chosen).answer_correct
    assert not synthetic.check_solution(problem, p.rejected).answer_correct
    assert p.chosen == recs[p.index]['completion']
    assert p.chosen_ids == tok.encode(p.chosen, add_eos=True)
    assert tok.decode(p.rejected_ids, skip_special_tokens=True) == p.rejected
    assert len(p.rejected_ids) <= c.max_new_tokens
  assert len({tuple(p.rejected_ids) for p in pairs}) == 12


@pytest.mark.parametrize('loss_type', ['sigmoid', 'ipo'])
def test_sequence_logps_are_summed_or_averaged_scores(loss_type):
  """The loss sees score() sums (sigmoid) or means (ipo, as TRL) per pair."""
  c = _config(loss_type=loss_type)
  model_cfg, params, _ = load_policy_or_init(c)
  rng = np.random.default_rng(0)
  ids = lambda n: rng.integers(3, model_cfg.vocab_size, n).tolist()
  pairs = [dpo.Pair(i, '', '', '', 0.0, ids(3 + i), ids(4 + 2 * i),
                    ids(2 + i), -1.0, -2.0) for i in range(2)]
  arrays = dpo.pair_arrays(pairs, width=32)
  got = np.asarray(dpo.sequence_logps(params, model_cfg, arrays['tokens'],
                                      arrays['mask']))
  for i, p in enumerate(pairs):
    for k, comp in enumerate((p.chosen_ids, p.rejected_ids)):
      ref = score(params, model_cfg, [p.prompt_ids], [comp])[0]
      np.testing.assert_allclose(got[i, k], ref.sum(), rtol=1e-5)
  loss, m = dpo.make_loss_fn(model_cfg, c)(params, arrays, None, None)
  lengths = arrays['mask'].sum(-1)
  pol, ref = got, arrays['ref_logps']
  if loss_type == 'ipo':
    pol, ref = pol / lengths, ref / lengths
  h = (pol[:, 0] - pol[:, 1]) - (ref[:, 0] - ref[:, 1])
  want = ((h - 1 / (2 * c.beta)) ** 2 if loss_type == 'ipo' else
          np.log1p(np.exp(-c.beta * h)))
  np.testing.assert_allclose(float(loss), want.mean(), rtol=1e-4)
  np.testing.assert_allclose(float(m['rewards/margins']), c.beta * h.mean(),
                             rtol=1e-4)
  # RPO adds alpha * the token-mean NLL of the chosen responses (from score()).
  c.rpo_alpha = 0.5
  rpo, _ = dpo.make_loss_fn(model_cfg, c)(params, arrays, None, None)
  chosen = [score(params, model_cfg, [p.prompt_ids], [p.chosen_ids])[0]
            for p in pairs]
  nll = -sum(x.sum() for x in chosen) / sum(len(x) for x in chosen)
  np.testing.assert_allclose(float(rpo), want.mean() + 0.5 * nll, rtol=1e-4)


@pytest.mark.slow
def test_loss_falls_on_fixed_pairs_and_resumes(tmp_path):
  c = _config()
  c.total_steps = 2
  c.optim.update(lr=3e-3, schedule='constant', warmup_steps=0)
  first = dpo.train(c, str(tmp_path))
  assert first['pairs']['pairs'] == 8  # The random policy is always wrong.
  pairs_file = tmp_path / dpo.PAIRS_FILE
  written = pairs_file.read_text()
  lines = [json.loads(l) for l in written.splitlines()]
  assert len(lines) == 9 and lines[0]['stats']['pairs'] == 8

  c.total_steps = 4  # Resumes at step 2 with the saved pairs.
  dpo.train(c, str(tmp_path))
  assert pairs_file.read_text() == written
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').open()]
  assert [r['step'] for r in rows] == list(range(1, 5))
  # Step 1: policy == reference (precomputed), so loss = log 2, margin 0.
  assert rows[0]['loss'] == pytest.approx(math.log(2), abs=1e-4)
  assert rows[0]['rewards/margins'] == pytest.approx(0.0, abs=1e-4)
  losses = [r['loss'] for r in rows]  # Every step sees all 8 pairs.
  assert all(b < a for a, b in zip(losses, losses[1:])), losses
  assert losses[-1] < losses[0] - 0.2, losses
  assert rows[-1]['rewards/accuracies'] >= 0.75
  assert rows[-1]['rewards/margins'] > 0.5
  assert all(r['num_pairs'] == 8 for r in rows)


def test_bad_configs_are_rejected():
  with pytest.raises(ValueError, match='loss_type'):
    dpo.check_config(_config(loss_type='kto'))
  with pytest.raises(ValueError, match='label_smoothing'):
    dpo.check_config(_config(loss_type='ipo', label_smoothing=0.1))
  with pytest.raises(ValueError, match='grad_accum_steps=3'):
    dpo.check_config(_config(grad_accum_steps=3))
  with pytest.raises(ValueError, match='divisible by the 8 devices'):
    dpo.train(_config(pairs_per_step=4), '/nonexistent/never/written')
