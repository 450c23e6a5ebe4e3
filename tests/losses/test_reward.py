"""Reward-model losses against NumPy references written from the formulas."""

import numpy as np
import pytest

from jaxreason.losses import reward


def _sig(x):
  return 1.0 / (1.0 + np.exp(-x))


def _bce(x, y):
  return -(y * np.log(_sig(x)) + (1 - y) * np.log(1 - _sig(x)))


def _step_ref(logits, labels, mask, first_error_only):
  total, count = 0.0, 0
  for i in range(logits.shape[0]):
    seen_wrong = False
    for t in range(logits.shape[1]):
      if not mask[i, t]:
        continue
      if first_error_only and seen_wrong:
        continue
      total += _bce(logits[i, t], labels[i, t])
      count += 1
      if labels[i, t] < 0.5:
        seen_wrong = True
  return total / count, count


@pytest.mark.parametrize('first_error_only', [False, True])
@pytest.mark.parametrize('soft', [False, True])
def test_step_bce_matches_numpy(first_error_only, soft):
  rng = np.random.default_rng(0)
  b, t = 4, 16
  logits = rng.normal(size=(b, t)).astype(np.float32) * 3
  labels = (rng.random((b, t)) if soft else
            (rng.random((b, t)) > 0.4)).astype(np.float32)
  mask = (rng.random((b, t)) > 0.5).astype(np.float32)
  loss, m = reward.step_bce_loss(logits, labels, mask,
                                 first_error_only=first_error_only)
  ref, count = _step_ref(logits, labels, mask, first_error_only)
  np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
  assert int(m['num_steps']) == count
  if first_error_only and not soft:
    assert count < mask.sum()  # Some steps after a wrong one were dropped.


def test_first_wrong_mask_keeps_the_first_error():
  labels = np.array([[1, 1, 0, 1, 0, 1]], np.float32)
  mask = np.array([[0, 1, 1, 0, 1, 1]], np.float32)
  out = reward.first_wrong_mask(labels, mask)
  np.testing.assert_array_equal(np.asarray(out)[0], [0, 1, 1, 0, 0, 0])


def test_two_token_logits_is_pairwise_log_odds():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(2, 3, 7)).astype(np.float32)
  out = np.asarray(reward.two_token_logits(logits, 4, 2))
  p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  np.testing.assert_allclose(_sig(out), p[..., 4] / (p[..., 4] + p[..., 2]),
                             rtol=1e-5)


@pytest.mark.parametrize('kind', ['bce', 'mse'])
def test_outcome_loss_matches_numpy(kind):
  rng = np.random.default_rng(2)
  s = rng.normal(size=8).astype(np.float32)
  y = (rng.random(8) > 0.5).astype(np.float32)
  w = np.array([1, 1, 1, 1, 1, 1, 0, 0], np.float32)
  loss, _ = reward.outcome_loss(s, y, kind, w)
  per = _bce(s, y) if kind == 'bce' else (_sig(s) - y) ** 2
  np.testing.assert_allclose(float(loss), (per * w).sum() / w.sum(),
                             rtol=1e-5)


def test_ranking_loss_matches_numpy():
  rng = np.random.default_rng(3)
  s = rng.normal(size=10).astype(np.float32)
  correct = np.array([1, 0, 0, 1, 1, 0, 1, 1, 0, 0], bool)
  group = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3])  # 2: all right, 3: wrong.
  w = np.array([1] * 9 + [0], np.float32)
  loss, m = reward.ranking_loss(s, correct, group, w)
  per_group, pairs = [], 0
  for g in np.unique(group):
    rows = [i for i in range(10) if group[i] == g and w[i] > 0]
    terms = [-np.log(_sig(s[i] - s[j])) for i in rows for j in rows
             if correct[i] and not correct[j]]
    pairs += len(terms)
    if terms:
      per_group.append(np.mean(terms))
  np.testing.assert_allclose(float(loss), np.mean(per_group), rtol=1e-5)
  assert int(m['num_pairs']) == pairs == 2 + 2
  assert float(m['num_groups']) == pytest.approx(2.0)
