r"""ThinkPRM: synthesise verification chains, fine-tune, evaluate.

  python experiments/thinkprm.py --config=configs/thinkprm/synthetic.py:debug \
      --workdir=/tmp/thinkprm_debug

Running again with the same --workdir resumes the fine-tuning.
"""

import json
import os
import sys

if not __package__:  # `python experiments/thinkprm.py`: import as `-m` does.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging

from experiments import launch
from jaxreason.recipes import thinkprm

KEYS = ('step_accuracy', 'step_accuracy_to_first_error',
        'first_error_accuracy', 'acc_erroneous', 'acc_correct', 'f1',
        'outcome_accuracy', 'unscored', 'mean_tokens')


def report(result):
  logging.info('Result: %s', json.dumps(
      {k: v for k, v in result.items() if k != 'eval'}, indent=1,
      default=str))
  s = result['synthesis']
  print(f"synthesis: kept {s['kept']} of {s['chains']} chains "
        f"(keep rate {s['keep_rate']:.3f}), {s['step_labels']} step labels "
        f"= {s['label_fraction_used']:.4f} of the PRM's")
  for name, m in result.get('eval', {}).items():
    print(name + ': ' + ', '.join(f'{k} {m[k]:.3f}' for k in KEYS if k in m))


if __name__ == '__main__':
  launch.run(thinkprm.train, report)
