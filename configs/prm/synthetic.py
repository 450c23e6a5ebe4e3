r"""Reward models on the synthetic arithmetic task's step labels.

  python experiments/sft.py --config=configs/sft/synthetic.py --workdir=runs/sft
  python experiments/prm.py --config=configs/prm/synthetic.py \
      --workdir=runs/prm --config.init_workdir=runs/sft
  python experiments/prm.py --config=configs/prm/synthetic.py:debug \
      --workdir=/tmp/prm_debug

Variants (comma-separated): '' (PRM, '+'/'-' token head, per-step BCE up
to the first wrong step, 800 steps of 32 solutions: about 6 minutes on 2
CPU cores from the quickstart policy, held-out test F1 0.60, see README), 'scalar' (a Dense(1) head instead), 'orm' (outcome BCE at the
last token), 'ranking' (Qwen2.5-Math ranking loss over each question's
group), 'all_steps' (BCE on every step, those after the first error labelled
0; with lr 1e-3 this collapsed to a constant score), 'first_error' (the
default, kept for old command lines),
'rollout' (Math-Shepherd labels: 8 rollouts per prefix from the initial
policy, hard), 'few' (label_fraction 0.01), 'policy' (the solutions are 4
samples per question of the initial policy, labelled by the exact step
checker: the errors the PRM must catch in best-of-N), 'debug' (a random tiny model,
seconds). `init_workdir` (an SFT workdir) gives the starting LM; empty: a
random `model`. See jaxreason/recipes/prm.py.
"""

import ml_collections

from jaxreason import config_defaults

VARIANTS = ('debug', 'scalar', 'token', 'orm', 'ranking', 'first_error',
            'all_steps', 'rollout', 'few', 'policy')


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.base()
  c.init_workdir = ''  # An SFT workdir; empty: a random `model`.
  c.tokenizer = dict(kind='char')
  c.model = config_defaults.small_model()

  c.head = 'token'  # token | scalar
  c.objective = 'prm'  # prm | orm | ranking
  c.first_error_only = True
  c.orm_loss = 'bce'  # bce | mse
  c.separator = '\n\n'  # Appended as token ids after each tokenised step.
  c.max_len = 192  # Prompt + steps; later steps are dropped.

  c.data = dict(task=config_defaults.synthetic_task(), num_train=4096,
                group_size=4, flawed_prob=0.6, label_fraction=1.0, seed=0,
                # 'flawed' (reference + injected errors) or 'policy'
                # (samples of init_workdir's policy, checker labels).
                solutions='flawed',
                sample=dict(temperature=1.0, max_new_tokens=64,
                            batch_prompts=256))
  # Math-Shepherd labels from the initial policy (n=0: gold labels).
  c.rollout = dict(n=0, kind='hard', max_new_tokens=48, temperature=1.0)

  c.groups_per_step = 8  # Batch = groups_per_step * group_size solutions.
  c.grad_accum_steps = 1
  c.total_steps = ml_collections.FieldReference(800)
  c.optim = dict(name='adamw', lr=3e-4, schedule='warmup_cosine',
                 warmup_steps=20, end_lr_ratio=0.1, b1=0.9, b2=0.98,
                 weight_decay=0.01, clip_norm=1.0)
  c.optim.total_steps = c.get_ref('total_steps')
  c.checkpoint_every = 100
  c.log_every = 20
  # Held-out ProcessBench-format sets: 'dev' picks the threshold, 'test'.
  c.eval = dict(num=128, seed=0, batch_size=64)

  variants = config_defaults.variants(arg, VARIANTS)
  if 'scalar' in variants:
    c.head = 'scalar'
  if 'orm' in variants:
    c.objective = 'orm'
  if 'ranking' in variants:
    c.objective = 'ranking'
  if 'first_error' in variants:
    c.first_error_only = True
  if 'all_steps' in variants:
    c.first_error_only = False
  if 'rollout' in variants:
    c.rollout.n = 8
  if 'few' in variants:
    c.data.label_fraction = 0.01
  if 'policy' in variants:
    c.data.solutions = 'policy'
  if 'debug' in variants:
    c.model = config_defaults.tiny_model()
    c.data.num_train = 16
    c.groups_per_step = 2
    c.max_len = 128
    c.total_steps = 2
    c.optim.warmup_steps = 1
    c.checkpoint_every = 1
    c.log_every = 1
    c.eval.update(num=8, batch_size=8)
    if c.rollout.n:
      c.rollout.update(n=2, max_new_tokens=4)
    c.data.sample.update(max_new_tokens=8, batch_prompts=8)
  return c
