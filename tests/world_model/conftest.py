"""World-model tests run with jax_threefry_partitionable=False.

The partitionable threefry (JAX's default) costs 1-2 s of XLA CPU compile per
random op shape, which dominates these small tests (every initializer and
sampling op compiles separately); the classic one compiles ~10x faster. The
tests compare against references computed with the same keys, so they do not
depend on which random bits are drawn. Scoped to this folder and restored
after each module.
"""

import jax
import pytest


@pytest.fixture(autouse=True, scope='module')
def _fast_threefry():
  with jax.threefry_partitionable(False):
    yield
