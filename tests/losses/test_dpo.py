"""DPO losses against NumPy written from the formulas."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.losses.dpo import dpo_loss


def logsig(x):
  return -np.log1p(np.exp(-x))


def np_dpo(pc, pr, rc, rr, beta, kind, ls):
  h = (pc - pr) - (rc - rr)
  if kind == 'sigmoid':
    out = -logsig(beta * h) * (1 - ls) - logsig(-beta * h) * ls
  elif kind == 'ipo':
    out = (h - 1 / (2 * beta)) ** 2
  else:
    c, r = beta * (pc - rc), beta * (pr - rr)
    out = -logsig(c) - 0.5 * logsig(-c) - 0.5 * logsig(-r)
  return out.mean()


@pytest.mark.parametrize('kind,ls', [('sigmoid', 0.0), ('sigmoid', 0.1),
                                     ('ipo', 0.0), ('nca_pair', 0.0)])
def test_dpo_matches_numpy(kind, ls):
  rng = np.random.default_rng(0)
  pc, pr, rc, rr = (rng.normal(-20, 3, 8) for _ in range(4))
  loss, metrics = dpo_loss(*(jnp.asarray(x) for x in (pc, pr, rc, rr)),
                           beta=0.1, loss_type=kind, label_smoothing=ls)
  np.testing.assert_allclose(float(loss), np_dpo(pc, pr, rc, rr, 0.1, kind, ls),
                             rtol=1e-5)
  acc = np.mean(0.1 * (pc - rc) > 0.1 * (pr - rr))
  assert float(metrics['rewards/accuracies']) == pytest.approx(acc)


def test_policy_equal_to_reference_gives_log2():
  x = jnp.asarray([-3.0, -5.0])
  loss, m = dpo_loss(x, x + 1, x, x + 1, beta=0.5)
  assert float(loss) == pytest.approx(np.log(2.0))
  assert float(m['rewards/margins']) == 0.0
