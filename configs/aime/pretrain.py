r"""A world model for the imitation study, trained offline.

  # The embodiment model (actions known), used by AIME and AIME-v2:
  python experiments/aime.py --config=configs/aime/pretrain.py:walker-stand \
      --workdir=runs/aime/walker-stand/wm \
      --config.data_dir=runs/aime/walker-stand/expert/data
  # The action-free model of the demonstrations (AIME-v2's surrogate reward):
  python experiments/aime.py \
      --config=configs/aime/pretrain.py:walker-stand,demos \
      --workdir=runs/aime/walker-stand/demo_wm \
      --config.data_dir=runs/aime/walker-stand/expert/data

Writes WORKDIR/world_model.{msgpack,json}. Argument: TASK[,demos][,debug].
"""

from jaxreason import config_defaults


def get_config(arg: str = ''):
  c, variants = config_defaults.aime_base(arg)
  c.stage = 'pretrain'
  c.dataset = 'embodiment'  # or 'demos' (action-free model).
  config_defaults.aime_world_model(c)
  c.total_steps = 3000
  c.checkpoint_every = 500
  c.log_every = 100
  for v in variants:
    if v == 'demos':
      c.dataset = 'demos'
    elif v == 'debug':
      config_defaults.aime_debug(c)
      config_defaults.aime_world_model_debug(c)
      c.total_steps = 2
      c.checkpoint_every = 1
      c.log_every = 1
    else:
      raise ValueError(f'Unknown variant {v!r}: expected a task name first, '
                       f'then demos, debug')
  return c
