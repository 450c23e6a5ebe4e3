r"""AIME (offline) and AIME-v2 (online) imitation from observation.

  # AIME: zero-shot, the pretrained embodiment model frozen.
  python experiments/aime.py --config=configs/aime/aime.py:walker-stand \
      --workdir=runs/aime/walker-stand/aime \
      --config.data_dir=runs/aime/walker-stand/expert/data \
      --config.world_model_dir=runs/aime/walker-stand/wm
  # AIME-v2: online, regulariser + surrogate reward (needs the demo model).
  python experiments/aime.py --config=configs/aime/aime.py:walker-stand,v2 \
      --workdir=runs/aime/walker-stand/aime_v2 \
      --config.data_dir=runs/aime/walker-stand/expert/data \
      --config.world_model_dir=runs/aime/walker-stand/wm \
      --config.demo_model_dir=runs/aime/walker-stand/demo_wm

Variants after the task: v2; its ablations v2,no_reg (no embodiment data in
the online world-model batches) and v2,no_reward (no surrogate reward or
imagination: AIME's loss, online); v2,adversarial (a discriminator reward);
debug. See jaxreason/recipes/aime.py.
"""

from jaxreason import config_defaults


def get_config(arg: str = ''):
  c, variants = config_defaults.aime_base(arg)
  c.stage = 'aime'
  config_defaults.aime_world_model(c)
  c.world_model_dir = ''  # configs/aime/pretrain.py workdir (embodiment).
  c.demo_model_dir = ''  # configs/aime/pretrain.py:TASK,demos workdir.
  c.policy_hidden = (128, 128)
  c.policy_lr = 3e-4
  c.aime_free_nats = 0.0
  c.action_entropy_weight = 0.0
  # AIME (offline): steps of the policy on demo batches.
  c.total_steps = 2000
  c.eval_every = 500
  c.log_every = 50
  # AIME-v2 (online) fields, used with the v2 variant.
  # The policy AIME-v2 starts from: '' (random) or a finished `aime` stage's
  # workdir (its offline policy, fine-tuned online; tools/aime_study.py).
  c.init_policy_dir = ''
  c.updates_per_episode = 50
  c.regulariser = True  # Half of each world-model batch: embodiment data.
  c.reward = 'surrogate'  # surrogate | adversarial | none
  c.aime_weight = 1.0
  c.actor_weight = 1.0
  c.entropy_weight = 3e-4
  # DreamerV3 return normalisation of the actor term: divide by
  # max(floor, EMA of the P95 - P5 range of the lambda-returns).
  c.return_norm = True
  c.return_norm_decay = 0.99
  c.return_norm_floor = 1.0
  c.value_hidden = (128, 128)
  c.value_lr = 3e-4
  c.target_tau = 0.02
  c.horizon = 15
  c.gamma = 0.99
  c.lambda_ = 0.95
  c.imagination_starts = 256
  for v in variants:
    if v == 'v2':
      c.stage = 'aime_v2'
      c.total_steps = 30  # Online episodes.
      c.eval_every = 5
      c.checkpoint_every = 1
      c.log_every = 1
    elif v == 'no_reg':
      c.regulariser = False
    elif v == 'no_reward':
      c.reward = 'none'
    elif v == 'adversarial':
      c.reward = 'adversarial'
    elif v == 'debug':
      config_defaults.aime_debug(c)
      config_defaults.aime_world_model_debug(c)
      c.policy_hidden = (16,)
      c.value_hidden = (16,)
      c.total_steps = 2
      c.eval_every = 1
      c.log_every = 1
      c.checkpoint_every = 1
      c.updates_per_episode = 2
      c.imagination_starts = 16
      c.horizon = 3
    else:
      raise ValueError(f'Unknown variant {v!r}: expected a task name first, '
                       f'then v2, no_reg, no_reward, adversarial, debug')
  return c
