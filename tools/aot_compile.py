r"""Compiles the SFT train step for a TPU topology on a CPU host; prints memory.

  python tools/aot_compile.py --config=configs/sft/synthetic.py \
      --topology=v5e:16x16 --preset=qwen2.5-7b --seq_len=2048 \
      --batch_size=256 --model_set=dtype=bfloat16 --model_set=remat=full \
      --output=/tmp/aot.json

Needs libtpu (`pip install -e .[tpu]`) but no TPU: libtpu describes the
topology's devices and XLA:TPU compiles for them, so per-device memory is
known before holding a pod. Nothing is allocated: the state and batch are
`jax.ShapeDtypeStruct`s carrying their shardings.

`--preset` replaces `config.model` with `{'preset': NAME}` (the preset's own
vocabulary); `--model_set=FIELD=VALUE` (repeatable) then overrides model
fields, and `--config.*` overrides everything else. `--scan_layers` is
`--model_set=scan_layers=True` (layers as one `nn.scan`); the report gives
the lowering and compile wall times, so unrolled and scanned compile times
can be compared per depth:

  python tools/aot_compile.py --config=configs/sft/synthetic.py \
      --topology=v5e:4x4 --preset=qwen2.5-7b --scan_layers --output=/tmp/s.json
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import time
from typing import Any, Sequence

# Compile-only: keep jax on the CPU and stop libtpu from probing for a TPU VM
# (metadata server, worker hostnames); none of these change the topology.
for _k, _v in (('JAX_PLATFORMS', 'cpu'), ('TPU_SKIP_MDS_QUERY', '1'),
               ('TPU_WORKER_HOSTNAMES', 'localhost'),
               ('TPU_ACCELERATOR_TYPE', 'v5litepod-4'),
               ('TF_CPP_MIN_LOG_LEVEL', '2')):
  os.environ.setdefault(_k, _v)

# pylint: disable=g-import-not-at-top
from absl import app
from absl import flags
import jax
from jax.experimental import topologies
import jax.numpy as jnp
import ml_collections
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxreason.data.pipeline import BATCH_KEYS
from jaxreason.models.transformer import Transformer
from jaxreason.recipes.sft import make_loss_fn
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train import optim, run_config
from jaxreason.train.state import abstract_train_state, param_count
from jaxreason.train.step import batch_sharding, make_train_step
# pylint: enable=g-import-not-at-top

GiB = 1024**3
# HBM per chip by libtpu device kind (topology prefixes v5e/v5litepod, v5p,
# v4, v6e). libtpu exposes v4 as 2 devices (TensorCores) a chip, so the
# per-device budget is the chip's HBM over the devices on a chip.
HBM_PER_CHIP = {'TPU v5 lite': 16 * GiB, 'TPU v5': 95 * GiB,
                'TPU v4': 32 * GiB, 'TPU v6 lite': 32 * GiB}
NAME_ALIASES = {'v5litepod': 'v5e'}  # libtpu knows v5e, not v5litepod.
EXAMPLES = ('v5e:2x2', 'v5e:16x16', 'v6e:4x4', 'v4:2x2x1', 'v5p:2x2x1',
            'v5p:4x4x4')


def get_topology(name: str) -> Any:
  """libtpu's compile-only description of a TPU topology ('v5e:4x4' ...).

  Raises ValueError for a name libtpu rejects, ImportError / RuntimeError
  when libtpu is not installed.
  """
  gen, sep, shape = name.partition(':')
  full = NAME_ALIASES.get(gen, gen) + sep + shape
  try:
    return topologies.get_topology_desc(platform='tpu', topology_name=full)
  except jax.errors.JaxRuntimeError as e:
    if 'INVALID_ARGUMENT' not in str(e):
      raise
    raise ValueError(
        f'Unknown TPU topology {name!r}: {e}. Expected GENERATION:SHAPE, '
        f'e.g. {", ".join(EXAMPLES)} (v4/v5p shapes are 3-D).') from None


def apply_overrides(config: ml_collections.ConfigDict, *,
                    preset: str | None = None, seq_len: int | None = None,
                    batch_size: int | None = None,
                    model_set: Sequence[str] = (), scan_layers: bool = False
                    ) -> ml_collections.ConfigDict:
  """A copy of `config` with the tool's command-line overrides."""
  config = ml_collections.ConfigDict(config.to_dict())
  if preset:
    config.model = ml_collections.ConfigDict({'preset': preset})
  if scan_layers:
    model_set = ['scan_layers=True', *model_set]
  with config.model.unlocked():
    for item in model_set:
      key, eq, value = item.partition('=')
      if not eq:
        raise ValueError(f'--model_set expects FIELD=VALUE, got {item!r}')
      try:
        config.model[key] = ast.literal_eval(value)
      except (ValueError, SyntaxError):
        config.model[key] = value  # A bare string, e.g. bfloat16.
  config.seq_len = seq_len or config.seq_len
  config.batch_size = batch_size or config.batch_size
  return config


def _memory_and_flops(compiled, oom: str | None, args: Any
                      ) -> tuple[dict[str, int | None], float | None]:
  """Per-device bytes by kind (and total), and XLA's flops per device."""
  if compiled is None:  # Arguments (outputs alias the state) + temporaries.
    shard_bytes = lambda x: (math.prod(x.sharding.shard_shape(x.shape)) *
                             x.dtype.itemsize)
    arg = sum(map(shard_bytes, jax.tree.leaves(args)))
    m = re.search(r'temporaries \(([\d.]+)([KMGT]?)\)', oom)
    temp = int(float(m[1]) * 1024**' KMGT'.index(m[2] or ' ')) if m else 0
    return dict(argument=arg, output=None, temp=temp, generated_code=None,
                alias=None, total=arg + temp), None
  mem = compiled.memory_analysis()
  sizes = {f: int(getattr(mem, f + '_size_in_bytes')) for f in
           ('argument', 'output', 'temp', 'generated_code', 'alias')}
  sizes['total'] = (sizes['argument'] + sizes['output'] + sizes['temp'] +
                    sizes['generated_code'] - sizes['alias'])
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return sizes, float(cost['flops']) if cost and 'flops' in cost else None


def compile_report(config: ml_collections.ConfigDict,
                   topology_name: str) -> dict[str, Any]:
  """Lowers and compiles the SFT step for `topology_name`; returns a report."""
  topology = get_topology(topology_name)
  devices = topology.devices
  mesh = mesh_lib.make_mesh(config.mesh, devices=devices)
  rules = rules_lib.rules_from_config(config.get('sharding_rules'))

  # Model: the tokenizer only matters when the model takes its vocab size.
  vocab = None
  if not config.model.get('vocab_size', -1):
    vocab = run_config.tokenizer_from_config(config.tokenizer).vocab_size
  model_cfg = run_config.model_config_from(config.model, vocab)
  model = Transformer(model_cfg)
  tx_factory = lambda mask: optim.make_optimizer(config.optim, mask)[0]
  init_params = lambda rng: model.init(rng, jnp.zeros((1, 1), jnp.int32))[
      'params']
  abstract, shardings, _ = abstract_train_state(
      init_params, tx_factory, jax.random.PRNGKey(config.seed), mesh, rules)

  # Step and abstract inputs (what sft.train feeds it).
  step = make_train_step(make_loss_fn(model), shardings, mesh,
                         schedule=optim.make_schedule(config.optim),
                         rules=rules, grad_accum_steps=config.grad_accum_steps)
  shape = (config.batch_size, config.seq_len)  # [B, T] global batch.
  batch = {k: jax.ShapeDtypeStruct(shape, jnp.int32,
                                   sharding=batch_sharding(mesh, rules))
           for k in BATCH_KEYS}
  rng = jax.ShapeDtypeStruct((2,), jnp.uint32,
                             sharding=NamedSharding(mesh, P()))
  start = time.perf_counter()
  lowered = step.lower(abstract, batch, rng)
  lower_s = time.perf_counter() - start
  start = time.perf_counter()
  try:
    compiled, oom = lowered.compile(), None
  except jax.errors.JaxRuntimeError as e:
    if 'RESOURCE_EXHAUSTED' not in str(e):
      raise
    # XLA:TPU refuses a program over HBM, saying how much temp it needs.
    # ('xla_tpu_no_crash_on_oom' took 10 min on a 7B step, then failed.)
    compiled, oom = None, str(e)
  compile_s = time.perf_counter() - start
  sizes, flops = _memory_and_flops(compiled, oom, (abstract, batch, rng))
  kind = devices[0].device_kind
  devices_per_chip = len(devices) // len({tuple(d.coords) for d in devices})
  hbm = HBM_PER_CHIP.get(kind)
  hbm = hbm // devices_per_chip if hbm else None
  n_params = param_count(abstract.params)
  tokens = config.batch_size * config.seq_len
  return {
      'topology': topology_name, 'device_kind': kind,
      'num_devices': len(devices), 'devices_per_chip': devices_per_chip,
      'mesh': dict(mesh.shape), 'model': str(model_cfg),
      'num_layers': model_cfg.num_layers,
      'scan_layers': model_cfg.scan_layers,
      'lower_seconds': lower_s, 'compile_seconds': compile_s,
      'param_count': n_params, 'batch_size': config.batch_size,
      'seq_len': config.seq_len,
      'grad_accum_steps': config.grad_accum_steps,
      'memory_per_device_bytes': sizes,
      'hbm_per_device_bytes': hbm,
      'fits': oom is None and (hbm is None or sizes['total'] <= hbm),
      'compiler_oom': oom,
      'flops_per_device_per_step': flops,
      'model_flops_per_step_6nd': 6.0 * n_params * tokens,
  }


def _size(b: float) -> str:
  for unit, scale in (('GiB', GiB), ('MiB', 1024**2), ('KiB', 1024)):
    if b >= scale:
      return f'{b / scale:8.2f} {unit}'
  return f'{b:8.0f} B  '


def format_report(r: dict[str, Any]) -> str:
  """Human-readable lines of a `compile_report`."""
  mem = r['memory_per_device_bytes']
  lines = [
      f"topology  {r['topology']}: {r['num_devices']} x {r['device_kind']}"
      f" ({r['devices_per_chip']} a chip), mesh {r['mesh']}",
      f"model     {r['param_count']:,} parameters; batch "
      f"{r['batch_size']} x {r['seq_len']} tokens, "
      f"grad_accum_steps={r['grad_accum_steps']}",
      f"compile   {r['num_layers']} layers, "
      f"{'scanned' if r['scan_layers'] else 'unrolled'}: lowering "
      f"{r['lower_seconds']:.1f} s, XLA compile {r['compile_seconds']:.1f} s",
      'memory per device:',
  ]
  for k in ('argument', 'output', 'temp', 'generated_code', 'alias'):
    value = '       ?' if mem[k] is None else _size(mem[k])
    lines.append(f'  {k:<15}{value}')
  how = ('argument + temp' if r['compiler_oom'] else
         'argument + output + temp + code - alias')
  lines.append(f"  {'total':<15}{_size(mem['total'])}   ({how})")
  hbm = r['hbm_per_device_bytes']
  if hbm:
    lines.append(f"  {'HBM':<15}{_size(hbm)}   {100 * mem['total'] / hbm:.1f}%"
                 f" used: {'fits' if r['fits'] else 'DOES NOT FIT'}")
  if r['compiler_oom']:
    lines.append(f"  XLA:TPU stopped: {r['compiler_oom']}")
  if r['flops_per_device_per_step']:
    lines.append(f"flops     {r['flops_per_device_per_step']:.4g} per device "
                 f"per step (XLA cost analysis); 6*N*tokens = "
                 f"{r['model_flops_per_step_6nd']:.4g} per step, all devices")
  return '\n'.join(lines)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  try:
    get_topology(f.topology)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  config = apply_overrides(f.config, preset=f.preset, seq_len=f.seq_len,
                           batch_size=f.batch_size, model_set=f.model_set,
                           scan_layers=f.scan_layers)
  report = compile_report(config, f.topology)
  print(format_report(report))
  if f.output:
    with open(f.output, 'w') as fp:
      json.dump(report, fp, indent=1)
    print(f'wrote {f.output}')


def _define_flags() -> None:
  # Defined only when run as a script, so tests can import this module next
  # to other tools without duplicate --config flags.
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', None, 'Config file (SFT).')
  flags.DEFINE_string('topology', None,
                      f'TPU topology, e.g. {", ".join(EXAMPLES)}.')
  flags.DEFINE_string('preset', None, 'Replace config.model by this preset.')
  flags.DEFINE_integer('seq_len', None, 'Override config.seq_len.')
  flags.DEFINE_integer('batch_size', None, 'Override config.batch_size.')
  flags.DEFINE_multi_string('model_set', [], 'FIELD=VALUE model override.')
  flags.DEFINE_bool('scan_layers', False,
                    'Model with scan_layers=True (one nn.scan over layers).')
  flags.DEFINE_string('output', None, 'Also write the report as JSON here.')
  flags.mark_flags_as_required(['config', 'topology'])


if __name__ == '__main__':
  _define_flags()
  app.run(main)
