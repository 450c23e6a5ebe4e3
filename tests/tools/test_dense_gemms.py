"""bench_train's GEMMs-alone column: tools/benchlib/train_profile.dense_gemms.

The products listed must be the step's weight products (their FLOPs equal
6 N_matmul per token, counted by hand), and each layout must compute the
product it names on both sides (against NumPy).
"""

import os
import sys

import numpy as np
import pytest
import torch

from subprocess_testlib import REPO

sys.path.insert(0, os.path.join(REPO, 'tools'))
from benchlib import train_profile  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxreason.models.transformer import TransformerConfig  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.parametrize('tie', [True, False])
def test_products_are_the_steps_weight_products(tie):
  cfg = TransformerConfig.from_preset('bench-tiny').replace(
      tie_embeddings=tie, num_kv_heads=2)  # d 64, f 128, 4 heads of 16, L 2.
  tokens = 24
  per_layer = 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128  # q, o; k, v; mlp.
  n_matmul = 2 * per_layer + 256 * 64
  gemms = train_profile.dense_gemms(cfg, tokens)
  flops = sum(2 * m * k * n * c for (_, m, k, n), c in gemms.items())
  assert flops == 6 * n_matmul * tokens
  # Forward, input gradient and weight gradient of every weight.
  assert sum(c for (lay, *_), c in gemms.items() if lay == 'TN') == 7 * 2 + 1
  unembed_fwd = ('NT', tokens, 64, 256) if tie else ('NN', tokens, 64, 256)
  assert gemms[unembed_fwd] == 1


@pytest.mark.parametrize('layout', ['NN', 'NT', 'TN'])
def test_each_layout_computes_its_product(layout):
  a, b = train_profile.gemm_operands(layout, 5, 7, 3,
                                     np.random.default_rng(0))
  want = {'NN': lambda: a @ b, 'NT': lambda: a @ b.T,
          'TN': lambda: a.T @ b}[layout]()
  assert want.shape == (5, 3)
  np.testing.assert_allclose(np.asarray(train_profile.jax_gemm(layout)(a, b)),
                             want, rtol=1e-5, atol=1e-5)
  got = train_profile.torch_gemm(layout)(torch.from_numpy(a),
                                         torch.from_numpy(b))
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_times_sum_over_calls():
  cfg = TransformerConfig.from_preset('bench-tiny')
  g = train_profile.dense_gemm_times(cfg, tokens=16, iters=1)
  assert g['jax_s'] == pytest.approx(
      sum(r['calls'] * r['jax_s'] for r in g['products']))
  assert g['torch_s'] == pytest.approx(
      sum(r['calls'] * r['torch_s'] for r in g['products']))
  assert g['ratio_jax_over_torch'] == pytest.approx(g['torch_s'] / g['jax_s'])
  assert len(g['products']) == len(train_profile.dense_gemms(cfg, 16))
