"""Learning-rate schedules (jaxreason.train.optim.make_schedule); decay mask."""

import math

import jax.numpy as jnp
import numpy as np

import pytest

from jaxreason.train import optim

LR = 3e-3


def _at(schedule, step):
  return float(schedule(step))


def test_constant():
  s = optim.make_schedule(dict(lr=LR))
  for step in (0, 1, 50, 10_000):
    assert _at(s, step) == pytest.approx(LR)


def test_constant_with_warmup():
  s = optim.make_schedule(dict(lr=LR, schedule='constant', warmup_steps=10))
  for step in range(0, 11):
    assert _at(s, step) == pytest.approx(LR * step / 10), step
  for step in (11, 100, 10_000):
    assert _at(s, step) == pytest.approx(LR)


@pytest.mark.parametrize('ratio', [0.0, 0.1])
def test_warmup_cosine(ratio):
  warmup, total = 10, 110
  s = optim.make_schedule(dict(lr=LR, schedule='warmup_cosine',
                               warmup_steps=warmup, total_steps=total,
                               end_lr_ratio=ratio))
  end = LR * ratio

  def closed_form(t):
    if t < warmup:
      return LR * t / warmup
    frac = min((t - warmup) / (total - warmup), 1.0)
    return end + (LR - end) * 0.5 * (1 + math.cos(math.pi * frac))

  for step in (0, 1, 5, 9, 10, 11, 35, 60, 85, 109, 110, 500):
    assert _at(s, step) == pytest.approx(closed_form(step), rel=1e-5,
                                         abs=1e-9), step
  # Landmarks written out: the peak, half way down, the floor.
  assert _at(s, warmup) == pytest.approx(LR)
  assert _at(s, 60) == pytest.approx((LR + end) / 2, rel=1e-5)
  assert _at(s, total) == pytest.approx(end, abs=1e-9)


@pytest.mark.parametrize('ratio', [0.0, 0.25])
def test_warmup_linear(ratio):
  warmup, total = 4, 24
  s = optim.make_schedule(dict(lr=LR, schedule='warmup_linear',
                               warmup_steps=warmup, total_steps=total,
                               end_lr_ratio=ratio))
  end = LR * ratio
  for step in range(0, warmup + 1):
    assert _at(s, step) == pytest.approx(LR * step / warmup, abs=1e-9), step
  for step in range(warmup, total + 1):
    frac = (step - warmup) / (total - warmup)
    assert _at(s, step) == pytest.approx(LR + (end - LR) * frac,
                                         rel=1e-5, abs=1e-9), step
  assert _at(s, total + 100) == pytest.approx(end, abs=1e-9)


def test_unknown_schedule_raises():
  with pytest.raises(ValueError, match='warmup_cosine'):
    optim.make_schedule(dict(lr=LR, schedule='step'))


def test_weight_decay_skips_vectors_also_when_stacked():
  """Matrices decay, vectors do not, in both layouts (scan_layers: [L, ...])."""
  params = {'layers_0': {'scale': jnp.ones(3), 'kernel': jnp.ones((3, 2))},
            'layers': {'scale': jnp.ones((2, 3)),
                       'kernel': jnp.ones((2, 3, 2))},
            'lm_head': {'kernel': jnp.ones((3, 2))}}
  tx, _ = optim.make_optimizer(dict(name='adamw', lr=0.1, weight_decay=0.5))
  zeros = {k: {n: jnp.zeros_like(x) for n, x in v.items()}
           for k, v in params.items()}
  updates, _ = tx.update(zeros, tx.init(params), params)
  for layer in ('layers_0', 'layers'):
    np.testing.assert_array_equal(updates[layer]['scale'], 0.0)
    np.testing.assert_allclose(updates[layer]['kernel'], -0.05, rtol=1e-6)
  np.testing.assert_allclose(updates['lm_head']['kernel'], -0.05, rtol=1e-6)
