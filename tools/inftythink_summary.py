r"""InftyThink vs monolithic decoding: one summary JSON and a PNG.

  python experiments/inftythink.py --config=configs/inftythink/synthetic.py \
      --workdir=runs/infty
  python experiments/inftythink.py \
      --config=configs/inftythink/synthetic.py:monolithic --workdir=runs/mono
  python tools/inftythink_summary.py --infty=runs/infty --mono=runs/mono \
      --out=benchmarks/inftythink_synthetic

Reads each workdir's eval.json (written by jaxreason/recipes/inftythink.py)
and config.json, and writes OUT/summary.json (accuracy, peak tokens in
context and KV-cache bytes per problem, the cache allocated, training
time) and OUT/memory_accuracy.png (peak context per problem, and accuracy,
for each decoding).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app
from absl import flags

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from jaxreason.train.metrics import read_metrics

_INFTY = flags.DEFINE_string('infty', None, 'InftyThink workdir.')
_MONO = flags.DEFINE_string('mono', None, 'Monolithic workdir.')
_OUT = flags.DEFINE_string('out', None, 'Output folder.')
flags.mark_flags_as_required(['infty', 'mono', 'out'])


def _load(workdir: str, mode: str) -> dict:
  path = os.path.join(workdir, 'eval.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: no such file (run the {mode} config '
                            'with this --workdir first)')
  with open(path) as f:
    ev = json.load(f)
  if ev.get('mode') != mode:
    raise ValueError(f'{path}: mode is {ev.get("mode")!r}, expected {mode!r}')
  rows = read_metrics(workdir)
  ev['train'] = {
      'steps': rows[-1]['step'] if rows else 0,
      'final_loss': rows[-1].get('loss') if rows else None,
      'seconds': ev.get('train_seconds'),
      'num_records': ev.get('num_records')}
  return ev


def _entry(name: str, e: dict, kv: int, per_problem=None) -> dict:
  keys = ('accuracy', 'peak_context_mean', 'peak_context_max',
          'peak_kv_bytes_mean', 'peak_kv_bytes_max', 'generated_tokens_mean',
          'cache_size', 'cache_bytes_allocated_per_row', 'truncated',
          'mean_iterations', 'status')
  out = {'decoding': name} | {k: e[k] for k in keys if k in e}
  out['kv_bytes_per_token'] = kv
  if per_problem is not None:
    out['peak_context_per_problem'] = [r['peak_context'] for r in per_problem]
  return out


def main(argv):
  del argv
  infty = _load(_INFTY.value, 'inftythink')
  mono = _load(_MONO.value, 'monolithic')
  if infty['num_problems'] != mono['num_problems'] or (
      infty['num_steps'] != mono['num_steps']):
    raise ValueError('the two runs evaluated different problem sets: '
                     f"{infty['num_problems']} x {infty['num_steps']} steps vs "
                     f"{mono['num_problems']} x {mono['num_steps']} steps")
  rows = [_entry('inftythink', infty['eval'], infty['kv_bytes_per_token'],
                 infty['per_problem'])]
  for size, e in mono['eval'].items():
    rows.append(_entry(f'monolithic_cache{size}', e,
                       mono['kv_bytes_per_token']))
  summary = {
      'task': f"{infty['num_steps']}-step mod-10 chains, held-out problems",
      'num_problems': infty['num_problems'],
      'eta': infty['eta'],
      'train_seq_len': {'inftythink': infty['train_seq_len'],
                        'monolithic': mono['train_seq_len']},
      'train': {'inftythink': infty['train'], 'monolithic': mono['train']},
      'results': rows,
  }
  os.makedirs(_OUT.value, exist_ok=True)
  with open(os.path.join(_OUT.value, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)

  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
  names = [r['decoding'] for r in rows]
  a.bar(names, [r['peak_context_mean'] for r in rows], color='C0',
        label='peak tokens in context (mean)')
  a.plot(names, [r['cache_size'] for r in rows], 'k_', ms=30,
         label='cache allocated')
  a.set_ylabel('tokens')
  a.legend(fontsize=8)
  a.set_title('memory per problem')
  b.bar(names, [r['accuracy'] for r in rows], color='C2')
  b.set_ylim(0, 1)
  b.set_title(f"accuracy ({summary['num_problems']} held-out problems)")
  for ax in (a, b):
    ax.tick_params(axis='x', labelsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(_OUT.value, 'memory_accuracy.png'), dpi=110)
  print(json.dumps(rows, indent=1))


if __name__ == '__main__':
  app.run(main)
