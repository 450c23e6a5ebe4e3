"""recipes/prm.py: the ranking objective trains, the workdir loads back, and
search_eval uses it as its verifier (verifier.kind='prm')."""

import json
import pathlib

import numpy as np

from jaxreason.file_modules import load_config
from jaxreason.recipes import prm, search_eval
from jaxreason.verifiers.reward_model import OutcomeRM, load_verifier
from jaxreason.verifiers.prm import DiscriminativePRM

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_ranking_scalar_run_and_reload(tmp_path):
  config = load_config(REPO / 'configs/prm/synthetic.py',
                       'debug,scalar,ranking')
  config.data.label_fraction = 0.5  # 8 of 16 questions.
  config.eval.num = 0  # The :debug config test covers the evaluation.
  config.checkpoint_every = 2  # Only the final step.
  result = prm.train(config, str(tmp_path))
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').open()]
  assert result['num_questions'] == 8 and result['num_examples'] == 32
  # Two groups of 4 per step: each has >= 1 correct x >= 1 wrong pair.
  assert all(r['num_pairs'] >= 2 and 0 <= r['pair_accuracy'] <= 1
             for r in rows)
  verifier = load_verifier(str(tmp_path))
  assert isinstance(verifier, OutcomeRM)
  js = verifier.judge(['Start at 3. Add 4.'], [['3+4=7', '\\boxed{7}']])
  assert len(js[0].step_scores) == 1 and 0 < js[0].step_scores[0] < 1
  as_prm = DiscriminativePRM.__new__(DiscriminativePRM)  # Same jitted fn.
  as_prm.__dict__.update(verifier.__dict__)
  steps = as_prm.judge(['Start at 3. Add 4.'], [['3+4=7', '\\boxed{7}']])
  np.testing.assert_allclose(steps[0].step_scores[-1], js[0].step_scores[0],
                             rtol=1e-5)
  assert 'eval' not in result
  # The trained ORM guides search: every sampled method is scored by it.
  search = load_config(REPO / 'configs/search_eval/synthetic.py', 'debug')
  search.verifier.kind, search.verifier.path = 'prm', str(tmp_path)
  search.methods = ('best_of_n', 'beam_search')
  search.ns = (2,)
  out = search_eval.run(search, str(tmp_path / 'search'))
  for method in search.methods:
    rows = out['per_problem'][method]['2']
    assert len(rows) == search.data.num_eval
    assert all(r['budget']['verifier_tokens'] > 0 for r in rows), method


def test_policy_samples_variant(tmp_path):
  """data.solutions='policy': the solutions are the initial policy's samples,
  labelled by the exact checker (a random tiny policy here)."""
  config = load_config(REPO / 'configs/prm/synthetic.py', 'debug,policy')
  config.eval.num = 0
  config.data.num_train = 4
  result = prm.train(config, str(tmp_path))
  assert result['num_examples'] == 4 * config.data.group_size
  rows = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').open()]
  assert rows and all(np.isfinite(r['loss']) for r in rows)
