"""SFT loss against a NumPy reference written from the formula."""

import numpy as np

from jaxreason.losses.sft import next_token_targets, sft_loss


def _reference(logits, tokens, seg, mask):
  b, t, _ = logits.shape
  total, count = 0.0, 0
  for i in range(b):
    for j in range(t - 1):
      if seg[i, j] > 0 and seg[i, j + 1] == seg[i, j] and mask[i, j + 1]:
        z = logits[i, j] - logits[i, j].max()
        logp = z - np.log(np.exp(z).sum())
        total -= logp[tokens[i, j + 1]]
        count += 1
  return total / count, count


def test_sft_loss_matches_numpy():
  rng = np.random.default_rng(0)
  b, t, v = 3, 12, 11
  logits = rng.normal(size=(b, t, v)).astype(np.float32)
  tokens = rng.integers(0, v, (b, t)).astype(np.int32)
  seg = np.array([[1] * 5 + [2] * 5 + [0] * 2, [1] * 12, [1] * 3 + [2] * 9],
                 np.int32)
  mask = (rng.random((b, t)) > 0.4).astype(np.int32)
  loss, metrics = sft_loss(logits, tokens, seg, mask)
  ref, count = _reference(logits, tokens, seg, mask)
  np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
  assert int(metrics['num_tokens']) == count


def test_targets_never_cross_segments():
  tokens = np.arange(8, dtype=np.int32)[None]
  seg = np.array([[1, 1, 1, 2, 2, 2, 0, 0]], np.int32)
  mask = np.ones_like(seg)
  targets, weights = next_token_targets(tokens, seg, mask)
  np.testing.assert_array_equal(np.asarray(weights)[0],
                                [1, 1, 0, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(np.asarray(targets)[0, :2], [1, 2])
