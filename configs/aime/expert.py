r"""Stage 1 of the imitation study: a SAC expert and the two datasets.

  python experiments/aime.py --config=configs/aime/expert.py:walker-stand \
      --workdir=runs/aime/walker-stand/expert

Writes WORKDIR/data/{embodiment,demos}/*.npz and info.json (see
jaxreason/imitation/data.py). The demonstrations are episodes of the trained
agent; the embodiment data are `embodiment_episodes` episodes of
`embodiment_policy`: 'random' (default; task-agnostic, as in AIME-v2) or
'sac_early' (the SAC run's first episodes: random-action ones, then early
SAC ones, which the task reward already shapes; the README's study used
these). Argument: TASK[,debug].
"""

from jaxreason import config_defaults


def get_config(arg: str = ''):
  c, variants = config_defaults.aime_base(arg)
  c.stage = 'expert'
  # 128x128 and batch 128: about 3x the CPU speed of 256x256 / 256
  # (tools: ~100 learning steps/s here).
  c.sac = dict(hidden=(128, 128), actor_lr=3e-4, critic_lr=3e-4,
               temperature_lr=3e-4, batch_size=128, random_steps=5000,
               updates_per_step=1)
  # Walker-stand's SAC returns were still ~500 after 40k agent steps here.
  c.sac_steps = 100_000  # Agent steps (x action_repeat env steps).
  c.total_steps = 50  # Chunks (checkpoint + log after each).
  c.embodiment_policy = 'random'  # or 'sac_early'.
  c.embodiment_episodes = 20
  c.num_demos = 10
  for v in variants:
    if v == 'debug':
      config_defaults.aime_debug(c)
      c.sac.update(hidden=(32, 32), batch_size=16, random_steps=20)
      c.sac_steps = 80
      c.total_steps = 2
      c.embodiment_episodes = 2
      c.num_demos = 1
    else:
      raise ValueError(f'Unknown variant {v!r}: expected a task name first, '
                       f'then debug')
  return c
