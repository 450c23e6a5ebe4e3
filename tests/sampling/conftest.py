"""Session fixtures: the tiny model's parameters and the shared sampler."""

import pytest

from jaxreason.sampling import Sampler

from sampling_testlib import CONFIG, SAMPLER_KW, random_params


@pytest.fixture(scope='session')
def params():
  return random_params(CONFIG)


@pytest.fixture(scope='session')
def sampler():
  return Sampler(CONFIG, eos_ids=(), **SAMPLER_KW)
