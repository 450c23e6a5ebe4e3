"""LIMR scores against a hand computation; the pass-rate filter with a stub."""

import jax
import numpy as np
import pytest

from jaxreason.rl import selection
from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.models.transformer import TransformerConfig, init_params


def hand_limr(rewards):
  """The LIMR formula with loops, skipping missing (NaN) entries."""
  n, k = rewards.shape
  mean = []
  for e in range(k):
    col = [rewards[i, e] for i in range(n) if not np.isnan(rewards[i, e])]
    mean.append(sum(col) / len(col))
  out = []
  for i in range(n):
    num = den = 0.0
    for e in range(k):
      if not np.isnan(rewards[i, e]):
        num += (rewards[i, e] - mean[e]) ** 2
        den += (1.0 - mean[e]) ** 2
    out.append(1.0 - num / den)
  return np.asarray(out)


def test_limr_scores_by_hand():
  rising = [0.0, 0.5, 1.0]
  solved = [1.0, 1.0, 1.0]
  never = [0.0, 0.0, 0.0]
  average = [1 / 3, 0.5, 2 / 3]  # The mean of all four rows, epoch by epoch.
  r = np.asarray([rising, average, solved, never])
  s = selection.limr_scores(r)
  np.testing.assert_allclose(s, hand_limr(r), atol=1e-12)
  # Following the average curve exactly: 1; always solved: 0 (it is all
  # the way from the average to 1 in every epoch).
  assert s[1] == pytest.approx(1.0)
  assert s[2] == pytest.approx(0.0)
  # 0 -> 1 against a mean of 1/3 -> 2/3: 1 - (2/9) / (4/9 + 1/4 + 1/9).
  assert s[0] == pytest.approx(1 - (2 / 9) / (4 / 9 + 1 / 4 + 1 / 9))
  assert s[0] > 0.6 > s[2]


def test_limr_scores_random_with_missing_entries():
  rng = np.random.default_rng(0)
  r = rng.uniform(0, 1, (7, 5))
  r[rng.uniform(size=r.shape) < 0.3] = np.nan
  r[:, 0] = rng.uniform(0, 1, 7)  # Every row has an entry.
  np.testing.assert_allclose(selection.limr_scores(r), hand_limr(r),
                             atol=1e-12)
  r[3] = np.nan  # Never drawn: NaN, never above a threshold.
  assert np.isnan(selection.limr_scores(r)[3])
  assert np.isnan(selection.limr_scores(np.ones((2, 3)))).all()  # 0 / 0.


def test_limr_reward_matrix_averages_repeats_and_marks_missing():
  entries = [
      {'index': 0, 'epoch': 0, 'reward': 0.25},
      {'index': 0, 'epoch': 0, 'reward': 0.75},  # Averaged with the above.
      {'index': 2, 'epoch': 0, 'reward': 1.0},
      {'index': 0, 'epoch': 3, 'reward': 0.5},
  ]
  m, epochs = selection.limr_reward_matrix(entries)
  assert epochs == [0, 3]
  np.testing.assert_array_equal(m, [[0.5, 0.5], [np.nan, np.nan],
                                    [1.0, np.nan]])
  assert selection.limr_reward_matrix(entries, 5)[0].shape == (5, 2)
  with pytest.raises(ValueError, match='index 2'):
    selection.limr_reward_matrix(entries, 2)


def test_filter_by_pass_rate_with_a_stub_reward():
  tok = CharTokenizer()
  cfg = TransformerConfig(vocab_size=tok.vocab_size, num_layers=1,
                          embed_dim=32, mlp_dim=64, num_heads=4,
                          num_kv_heads=2)
  params = init_params(cfg, jax.random.key(0))
  n = 4
  solved = [0, 1, 2, 4, 3]  # Samples of each record the stub calls right.
  records = [{'prompt': f'Problem {i}.\n', 'solved': s}
             for i, s in enumerate(solved)]
  seen = {}

  def reward_fn(texts, recs):  # The first `solved` samples of each record.
    out = []
    for text, rec in zip(texts, recs):
      assert len(tok.encode(text)) <= 5  # A sample, decoded.
      k = seen[rec['prompt']] = seen.get(rec['prompt'], 0) + 1
      out.append(float(k <= rec['solved']))
    return np.asarray(out, np.float32)

  kept, rates = selection.filter_by_pass_rate(
      params, cfg, tok, records, reward_fn, n, 0.25, 0.75, max_new_tokens=5,
      batch_prompts=2)
  assert all(seen[r['prompt']] == n for r in records)
  np.testing.assert_allclose(rates, np.asarray(solved) / n)
  assert kept == [records[1], records[2], records[4]]
  with pytest.raises(ValueError, match='lo <= hi'):
    selection.filter_by_pass_rate(params, cfg, tok, records, reward_fn, n,
                                  0.8, 0.2, max_new_tokens=5)
