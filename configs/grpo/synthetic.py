r"""GRPO on the synthetic arithmetic task, starting from an SFT policy.

  python experiments/sft.py --config=configs/sft/synthetic.py --workdir=runs/sft
  python experiments/grpo.py --config=configs/grpo/synthetic.py \
      --workdir=runs/grpo --config.policy=runs/sft
  # DAPO: clip-higher, token-mean loss, dynamic sampling, overlong filtering.
  python experiments/grpo.py --config=configs/grpo/synthetic.py:dapo ...
  # Dr.GRPO: no std scaling, constant normaliser.
  python experiments/grpo.py --config=configs/grpo/synthetic.py:dr_grpo ...
  # LoRA: only rank-8 adapters train; the reference is the base (no copy).
  python experiments/grpo.py --config=configs/grpo/synthetic.py:lora,kl ...

Variants (comma-separated): '' (GRPO), 'dapo', 'dr_grpo', 'kl' (beta 0.04),
'lora', 'debug' (random tiny policy, seconds).
`policy` is a jaxreason workdir or a Hugging Face folder; empty means a
randomly initialised `model` (only sensible for debugging).
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.base()
  config_defaults.policy_source(c)  # SFT workdir / HF folder, or random.

  c.data = config_defaults.synthetic_data(num_train=50_000)
  c.reward = dict(kind='synthetic', accuracy=1.0, step=0.0, format=0.0)

  c.prompts_per_step = 32
  c.group_size = 8
  c.max_new_tokens = 64
  c.temperature = 1.0
  c.top_p = 1.0
  c.stop_strings = ()

  c.scale_rewards = 'group'
  c.loss_type = 'grpo'
  c.epsilon_low = 0.2
  c.epsilon_high = 0.2
  c.beta = 0.0
  c.num_iterations = 1
  c.mask_truncated_completions = False
  c.dynamic_sampling = False
  c.max_sampling_rounds = 3
  c.grad_accum_steps = 1

  # LoRA (jaxreason/models/lora.py); rank 0 is off (full fine-tuning).
  # targets: regexes searched in kernel paths (layers_0/mlp/up_proj/kernel).
  c.lora = dict(rank=0, alpha=16.0, dropout=0.0,
                targets=('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj',
                         'up_proj', 'down_proj'))

  c.total_steps = ml_collections.FieldReference(100)
  c.optim = dict(name='adamw', lr=3e-5, schedule='constant', warmup_steps=5,
                 b1=0.9, b2=0.99, weight_decay=0.0, clip_norm=1.0)
  c.optim.total_steps = c.get_ref('total_steps')
  c.checkpoint_every = 50
  c.log_every = 5
  c.eval_before = True
  c.export_hf = ''  # If set, the final (LoRA-merged) policy as an HF folder.

  variants = arg.split(',') if arg else []
  for v in variants:
    if v == 'dapo':
      c.loss_type = 'dapo'
      c.epsilon_high = 0.28
      c.dynamic_sampling = True
      c.mask_truncated_completions = True
    elif v == 'dr_grpo':
      c.loss_type = 'dr_grpo'
      c.scale_rewards = 'none'
    elif v == 'kl':
      c.beta = 0.04
    elif v == 'lora':
      c.lora.rank = 8
      c.lora.alpha = 16.0
      c.optim.lr = 1e-3  # Adapters take a larger step than full weights.
    elif v == 'debug':
      c.policy = ''
      c.data.num_train = 64
      c.data.num_eval = 4
      c.prompts_per_step = 2
      c.group_size = 4
      c.max_new_tokens = 8
      c.total_steps = 2
      c.checkpoint_every = 1
      c.log_every = 1
      c.num_iterations = 2
      c.beta = 0.04
    else:
      raise ValueError(f'Unknown variant {v!r}: expected dapo, dr_grpo, kl, '
                       'lora, debug (comma-separated)')
  return c
