"""Logical-to-mesh rules."""

import jax
from jax.sharding import PartitionSpec as P

from jaxreason.sharding.mesh import make_mesh
from jaxreason.sharding.rules import logical_to_spec, rules_from_config


def test_specs_on_a_2x2x2_mesh():
  mesh = make_mesh([('data', 2), ('fsdp', 2), ('tensor', 2)])
  assert logical_to_spec(('embed', 'heads', 'head_dim'), (32, 4, 8),
                         mesh) == P('fsdp', 'tensor', None)
  assert logical_to_spec(('act_batch', 'act_length'), (8, 5),
                         mesh) == P(('data', 'fsdp'), None)


def test_indivisible_dimension_stays_replicated():
  mesh = make_mesh([('data', 1), ('fsdp', 2), ('tensor', 4)])
  # 2 KV heads cannot be split 4 ways.
  assert logical_to_spec(('embed', 'kv_heads', 'head_dim'), (32, 2, 8),
                         mesh) == P('fsdp', None, None)


def test_size_one_axes_are_dropped_and_overrides_apply():
  mesh = make_mesh([('data', 1), ('fsdp', -1), ('tensor', 1)])
  assert mesh.shape['fsdp'] == jax.device_count()
  assert logical_to_spec(('vocab', 'embed'), (64, 32), mesh) == P(None, 'fsdp')
  rules = rules_from_config([('embed', None), ('vocab', ['fsdp'])])
  assert logical_to_spec(('vocab', 'embed'), (64, 32), mesh,
                         rules) == P('fsdp', None)


def test_mesh_errors_name_the_problem():
  import pytest  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match='needs 6 devices'):
    make_mesh([('data', 2), ('fsdp', 3), ('tensor', 1)])
  with pytest.raises(ValueError, match='at most one axis'):
    make_mesh([('data', -1), ('fsdp', -1), ('tensor', 1)])
