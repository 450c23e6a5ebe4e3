"""tools/benchlib/train_mfu.py (the GPU check's train step) at a tiny shape."""

import os
import sys

import numpy as np

from subprocess_testlib import REPO

sys.path.insert(0, os.path.join(REPO, 'tools'))
from benchlib import train_mfu  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxreason.models.transformer import TransformerConfig  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_flops_per_token_by_hand():
  cfg = TransformerConfig.from_preset('bench-tiny')  # d 64, f 128, 4 heads, L 2.
  per_layer = 4 * 64 * 64 + 3 * 64 * 128  # q, k, v, o + gate, up, down.
  n_matmul = 2 * per_layer + 256 * 64  # + the tied unembedding.
  f = train_mfu.flops_per_token(cfg, seq_len=16)
  assert f['n_matmul'] == n_matmul
  assert f['total'] == 6 * n_matmul + 12 * 2 * 16 * 4 * 16


def test_train_step_mfu_trains_and_reports():
  cfg = TransformerConfig.from_preset('bench-tiny')
  r = train_mfu.train_step_mfu(cfg, batch=2, seq_len=16, steps=3, warmup=1,
                               matmul_n=128)
  assert r['tokens_per_s'] > 0 and r['peak_matmul_flops_per_s'] > 0
  assert np.isclose(r['mfu'], r['model_flops_per_s']
                    / r['peak_matmul_flops_per_s'])
  # Random tokens: the first loss is about log(vocab), and AdamW on one
  # repeated batch lowers it.
  assert abs(r['losses'][0] - np.log(cfg.vocab_size)) < 0.5
  assert r['losses'][-1] < r['losses'][0]
