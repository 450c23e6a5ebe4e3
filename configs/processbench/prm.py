r"""ProcessBench with a discriminative PRM (or ORM) trained by recipes/prm.py.

  python experiments/processbench.py --config=configs/processbench/prm.py \
      --workdir=runs/pb --config.verifier.workdir=runs/prm --config.limit=50
  python experiments/processbench.py --config=configs/processbench/prm.py:debug \
      --workdir=/tmp/pb_debug

Real subsets from <data_dir>/processbench ($JAXREASON_DATA or
../shared/data; `data_dir` overrides), the first `limit` records of each
(0: all); threshold picked on `pick_on` (gsm8k) unless `threshold` >= 0.
Plus a held-out synthetic set (`synthetic.num` records for dev and as many
for test). Variants: 'orm' (one score per solution), 'debug' (a random
tiny PRM, 4 records per subset, seconds; real subsets skipped if absent).
"""

import ml_collections

from jaxreason import config_defaults
from jaxreason.evals.processbench import SUBSETS


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.base()
  c.verifier = dict(kind='prm', workdir='', batch_size=32, max_len=0,
                    # kind='random' only:
                    head='token', seed=0, tokenizer=dict(kind='char'),
                    model=config_defaults.tiny_model())
  c.data_dir = ''
  c.require_data = True
  c.subsets = SUBSETS
  c.limit = 0
  c.pick_on = 'gsm8k'
  c.threshold = -1.0  # >= 0: use it instead of picking one.
  c.synthetic = dict(num=256, seed=0, task=config_defaults.synthetic_task())

  variants = config_defaults.variants(arg, {'debug', 'orm'})
  if 'orm' in variants:
    c.verifier.kind = 'orm'
  if 'debug' in variants:
    c.verifier.update(kind='random', max_len=256, batch_size=8)
    c.require_data = False
    c.limit = 4
    c.synthetic.num = 8
  return c
