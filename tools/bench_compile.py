r"""Compile time of the SFT train step, unrolled against scanned layers.

  python tools/bench_compile.py --presets=qwen2.5-1.5b,qwen2.5-7b \
      --depths=4,14,full --output=benchmarks/bench_compile.json

For each preset and depth (`full` = the preset's own number of layers; a
number overrides `num_layers`, everything else stays the preset's shape) it
runs `tools/aot_compile.py` twice in a fresh process, once with layers
unrolled and once with `--scan_layers`, for a TPU topology (libtpu compiles
for it on this CPU host; nothing runs), and records lowering and XLA compile
wall time, and the compiling process's CPU time (user + system, from
getrusage): on a shared host the wall time measures the other tenants as
much as the compiler, the CPU time much less so. Scanned compile time should
be roughly flat in depth; unrolled grows with it. The load average before
and after each compile is recorded too.
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

REPO = pathlib.Path(__file__).resolve().parents[1]

_PRESETS = flags.DEFINE_list('presets', ['qwen2.5-1.5b', 'qwen2.5-7b'],
                             'Model presets (models/presets).')
_DEPTHS = flags.DEFINE_list('depths', ['full'],
                            "Layer counts; 'full' = the preset's own.")
_TOPOLOGY = flags.DEFINE_string('topology', 'v5e:4x4', 'TPU topology.')
_SEQ_LEN = flags.DEFINE_integer('seq_len', 1024, 'Tokens per sequence.')
_BATCH = flags.DEFINE_integer('batch_size', 16, 'Global batch.')
_OUTPUT = flags.DEFINE_string('output', None, 'JSON output path.')


def compile_once(preset: str, depth: str, scan: bool) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, 'aot.json')
    argv = [sys.executable, str(REPO / 'tools' / 'aot_compile.py'),
            '--config=configs/sft/synthetic.py', f'--topology={_TOPOLOGY.value}',
            f'--preset={preset}', f'--seq_len={_SEQ_LEN.value}',
            f'--batch_size={_BATCH.value}', '--model_set=dtype=bfloat16',
            '--model_set=remat=full',
            "--config.mesh=(('data', 1), ('fsdp', -1), ('tensor', 1))",
            f'--output={out}']
    if depth != 'full':
      argv.append(f'--model_set=num_layers={int(depth)}')
    if scan:
      argv.append('--scan_layers')
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)),
                          check=False)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime -
                                               before.ru_stime)
    if proc.returncode != 0 or not os.path.exists(out):
      raise RuntimeError(f'aot_compile failed for {preset} depth {depth} '
                         f'scan={scan}:\n{proc.stderr[-3000:]}')
    with open(out) as f:
      report = json.load(f)
  return {'preset': preset, 'num_layers': report['num_layers'],
          'scan_layers': scan, 'lower_s': report['lower_seconds'],
          'compile_s': report['compile_seconds'], 'process_wall_s': wall,
          'process_cpu_s': cpu,
          'fits': report['fits'], 'param_count': report['param_count'],
          'load_before': load_before, 'load_after': os.getloadavg()[0]}


def main(argv):
  del argv
  rows = []
  for preset in _PRESETS.value:
    for depth in _DEPTHS.value:
      for scan in (False, True):
        row = compile_once(preset, depth, scan)
        rows.append(row)
        print(f"{preset:14s} {row['num_layers']:3d} layers "
              f"{'scanned ' if scan else 'unrolled'}: lower "
              f"{row['lower_s']:6.1f} s, compile {row['compile_s']:7.1f} s, "
              f"process CPU {row['process_cpu_s']:7.1f} s "
              f"(load {row['load_before']:.1f})", flush=True)
  ratios = {}
  for r in rows:
    if r['scan_layers']:
      u = next(x for x in rows if not x['scan_layers'] and
               x['preset'] == r['preset'] and
               x['num_layers'] == r['num_layers'])
      ratios[f"{r['preset']}/{r['num_layers']}"] = {
          'wall': (u['lower_s'] + u['compile_s']) /
                  (r['lower_s'] + r['compile_s']),
          'process_cpu': u['process_cpu_s'] / r['process_cpu_s']}
  result = {'topology': _TOPOLOGY.value, 'seq_len': _SEQ_LEN.value,
            'batch_size': _BATCH.value, 'rows': rows,
            'unrolled_over_scanned': ratios, 'cpu_count': os.cpu_count()}
  print(json.dumps(ratios, indent=1))
  if _OUTPUT.value:
    pathlib.Path(_OUTPUT.value).parent.mkdir(parents=True, exist_ok=True)
    with open(_OUTPUT.value, 'w') as f:
      json.dump(result, f, indent=1)


if __name__ == '__main__':
  app.run(main)
