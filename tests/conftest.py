"""Test setup: 8 fake CPU devices (set before jax is imported), CPU only."""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# pytest-xdist workers each load libtpu (TPU topologies for AOT tests).
os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')

import pathlib  # pylint: disable=g-import-not-at-top

import pytest  # pylint: disable=g-import-not-at-top

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir() -> pathlib.Path:
  """Benchmark data: $JAXREASON_DATA or ../shared/data beside the checkout."""
  return pathlib.Path(os.environ.get('JAXREASON_DATA',
                                     REPO.parent / 'shared' / 'data'))


@pytest.fixture(scope='session')
def data_dir() -> pathlib.Path:
  path = shared_data_dir()
  if not path.exists():
    pytest.skip(f'benchmark data not found at {path} (set JAXREASON_DATA)')
  return path
