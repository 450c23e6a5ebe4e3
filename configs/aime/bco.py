r"""Baselines of the imitation study: BCO(0) and BC with true actions.

  python experiments/aime.py --config=configs/aime/bco.py:walker-stand \
      --workdir=runs/aime/walker-stand/bco \
      --config.data_dir=runs/aime/walker-stand/expert/data

BCO(0) (Torabi et al., 2018) fits an inverse dynamics model on the
embodiment data and clones the demonstrations' inferred actions; BC with the
demos' true actions is the upper reference (not observation-only).
Argument: TASK[,debug].
"""

from jaxreason import config_defaults


def get_config(arg: str = ''):
  c, variants = config_defaults.aime_base(arg)
  c.stage = 'bco'
  c.bco = dict(hidden=(256, 256), learning_rate=1e-3, batch_size=256,
               idm_steps=10_000, bc_steps=10_000, log_every=1000)
  c.eval_episodes = 10
  c.checkpoint_every = 1000  # Steps (idm_steps + bc_steps in all).
  for v in variants:
    if v == 'debug':
      config_defaults.aime_debug(c)
      c.bco.update(hidden=(16,), batch_size=8, idm_steps=1, bc_steps=1,
                   log_every=1)
      c.checkpoint_every = 1
    else:
      raise ValueError(f'Unknown variant {v!r}: expected a task name first, '
                       f'then debug')
  return c
