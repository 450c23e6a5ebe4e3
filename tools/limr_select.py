r"""LIMR: select the training problems whose learning follows the run's.

LIMR (Li et al. 2025, "LIMR: Less is More for RL Scaling") scores each
training sample by how closely its reward curve over the epochs of an RL run
follows the average curve (`jaxreason.rl.selection.limr_scores`) and keeps
those above a threshold for the next run. GRPO writes the rewards it sees to
workdir/limr_rewards.jsonl ({"index", "epoch", "step", "reward"} per prompt
and step); repeated (index, epoch) entries are averaged.

  python tools/limr_select.py --rewards=runs/grpo --output=runs/limr.jsonl \
      [--threshold=0.6] [--records=train.jsonl --records_offset=0 \
       --records_output=runs/limr_records.jsonl]

--output gets one {"index", "score"} line per selected sample (in index
order). With --records (a JSONL whose line `records_offset + index` is
training record `index`: for a GRPO run on data.source='jsonl', the file it
read with records_offset = data.num_eval, whose first lines are held out)
the selected records are written to --records_output (default: next to
--output, `<output>.records.jsonl`), ready for `--config.data.path=...`.

Samples never drawn in some epoch are compared with the average curve on
the epochs where they were drawn; samples never drawn at all score NaN and
are not selected. Prints a summary and returns it from `main`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from jaxreason.data import sources
from jaxreason.rl import selection

LOG_FILE = 'limr_rewards.jsonl'


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--rewards', required=True,
                 help=f'a GRPO workdir or its {LOG_FILE}')
  p.add_argument('--output', required=True, help='JSONL of selected indices')
  p.add_argument('--threshold', type=float, default=0.6,
                 help='keep samples with score > threshold')
  p.add_argument('--records', default='',
                 help='JSONL of the training records (optional)')
  p.add_argument('--records_offset', type=int, default=0,
                 help='line of --records holding training record 0')
  p.add_argument('--records_output', default='',
                 help='selected records (default <output>.records.jsonl)')
  return p.parse_args(list(argv))


def main(argv: Sequence[str]) -> dict[str, Any]:
  args = parse_args(argv)
  path = args.rewards
  if os.path.isdir(path):
    path = os.path.join(path, LOG_FILE)
  records = None
  if args.records:
    records = sources.read_jsonl(args.records)[args.records_offset:]
  rewards, epochs = selection.limr_reward_matrix(
      sources.read_jsonl(path, ('index', 'epoch', 'reward')),
      None if records is None else len(records))
  scores = selection.limr_scores(rewards)
  with np.errstate(invalid='ignore'):
    selected = np.nonzero(scores > args.threshold)[0]
  with open(args.output, 'w') as f:
    for i in selected:
      f.write(json.dumps({'index': int(i), 'score': float(scores[i])}) + '\n')
  summary = {
      'samples': int(len(scores)),
      'epochs': epochs,
      'never_drawn': int(np.isnan(rewards).all(1).sum()),
      'selected': int(len(selected)),
      'threshold': args.threshold,
      'output': args.output,
  }
  if records is not None:
    out = args.records_output or (
        os.path.splitext(args.output)[0] + '.records.jsonl')
    with open(out, 'w') as f:
      for i in selected:
        f.write(json.dumps(records[i]) + '\n')
    summary['records_output'] = out
  print(json.dumps(summary, indent=1))
  return summary


if __name__ == '__main__':
  main(sys.argv[1:])
