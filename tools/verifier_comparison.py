r"""ThinkPRM vs the discriminative PRM: one JSON and one markdown table.

  python tools/verifier_comparison.py --out=benchmarks/verifier_comparison \
      --thinkprm=runs/thinkprm --prm=runs/prm --prm_few=runs/prm_few \
      --bon=thinkprm:runs/bon_thinkprm --bon=prm:runs/bon_prm \
      --commands=benchmarks/verifier_comparison/commands.txt

Reads workdir/thinkprm_eval.json of a `experiments/thinkprm.py` run (the
ThinkPRM variants and the zero-shot LLM judge), workdir/result.json of
`experiments/prm.py` runs (held-out ProcessBench-format F1, same 'dev' /
'test' records) and workdir/results.json of `experiments/search_eval.py`
runs (best-of-N accuracy per N), and writes summary.json and summary.md.
"""

import json
import os

from absl import app
from absl import flags

_OUT = flags.DEFINE_string('out', None, 'Output folder.', required=True)
_THINKPRM = flags.DEFINE_string('thinkprm', None, 'ThinkPRM workdir.',
                                required=True)
_PRM = flags.DEFINE_multi_string(
    'prm', [], 'name:workdir of a recipes.prm run (repeatable).')
_BON = flags.DEFINE_multi_string(
    'bon', [], 'name:workdir of a search_eval run (repeatable).')
_COMMANDS = flags.DEFINE_string('commands', '', 'A text file of the commands '
                                'that produced the runs (copied in).')

KEYS = ('f1', 'acc_erroneous', 'acc_correct', 'num_erroneous', 'num_correct')


def _load(path: str) -> dict:
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: run the experiment first')
  with open(path) as f:
    return json.load(f)


def _split(arg: str, flag: str) -> tuple[str, str]:
  if ':' not in arg:
    raise ValueError(f'--{flag}={arg!r}: expected name:workdir')
  name, path = arg.split(':', 1)
  return name, path


def processbench_rows(thinkprm_dir: str, prms: list[str]) -> dict:
  rows = {}
  for name, m in _load(os.path.join(thinkprm_dir,
                                    'thinkprm_eval.json')).items():
    pb = m['processbench']
    rows[name] = {s: {k: pb[s][k] for k in KEYS} for s in ('dev', 'test')}
    rows[name]['mean_tokens'] = m.get('mean_tokens')
  for arg in prms:
    name, path = _split(arg, 'prm')
    ev = _load(os.path.join(path, 'result.json'))['eval']
    rows[name] = {s: {k: ev['subsets'][s][k] for k in KEYS}
                  for s in ('dev', 'test')}
    rows[name]['threshold'] = ev['threshold']
  return rows


def bon_rows(bons: list[str]) -> dict:
  rows = {}
  for arg in bons:
    name, path = _split(arg, 'bon')
    summary = _load(os.path.join(path, 'results.json'))['summary']
    rows[name] = {method: {n: round(v['accuracy'], 4) for n, v in per_n.items()}
                  for method, per_n in summary.items()}
  return rows


def markdown(pb: dict, bon: dict) -> str:
  lines = ['## ProcessBench-format F1, held-out synthetic (128 dev + 128 test)',
           '', '| verifier | test F1 | acc err | acc cor | dev F1 |',
           '|---|---|---|---|---|']
  for name, r in pb.items():
    t = r['test']
    lines.append(f"| {name} | {t['f1']:.3f} | {t['acc_erroneous']:.3f} | "
                 f"{t['acc_correct']:.3f} | {r['dev']['f1']:.3f} |")
  if bon:
    ns = sorted({n for r in bon.values() for m in r.values() for n in m},
                key=int)
    lines += ['', '## Best-of-N accuracy (100 held-out questions)', '',
              '| verifier | method | ' + ' | '.join(f'N={n}' for n in ns) +
              ' |', '|---|---|' + '---|' * len(ns)]
    for name, r in bon.items():
      for method, per_n in r.items():
        lines.append(f'| {name} | {method} | ' + ' | '.join(
            f'{per_n[n]:.3f}' if n in per_n else '' for n in ns) + ' |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  pb = processbench_rows(_THINKPRM.value, _PRM.value)
  bon = bon_rows(_BON.value)
  out = {'processbench_synthetic': pb, 'best_of_n': bon}
  if _COMMANDS.value:
    with open(_COMMANDS.value) as f:
      out['commands'] = [l.rstrip('\n') for l in f if l.strip()]
  os.makedirs(_OUT.value, exist_ok=True)
  with open(os.path.join(_OUT.value, 'summary.json'), 'w') as f:
    json.dump(out, f, indent=1)
  with open(os.path.join(_OUT.value, 'summary.md'), 'w') as f:
    f.write(markdown(pb, bon))
  print(markdown(pb, bon))


if __name__ == '__main__':
  app.run(main)
