r"""DPO on semi-on-policy pairs (Light-R1) for the synthetic arithmetic task.

  python experiments/sft.py --config=configs/sft/synthetic.py --workdir=runs/sft
  python experiments/dpo.py --config=configs/dpo/synthetic.py \
      --workdir=runs/dpo --config.policy=runs/sft
  python experiments/dpo.py --config=configs/dpo/synthetic.py:debug \
      --workdir=/tmp/dpo_debug

Pairs: for each of `data.num_train` prompts, `num_candidates` samples of the
policy are checked with `reward`; chosen = the reference solution (verified),
rejected = up to `max_pairs_per_prompt` of the policy's wrong samples (see
jaxreason/recipes/dpo.py). `policy` is a jaxreason workdir or a Hugging Face
folder; empty means a randomly initialised `model` (debugging only).

Variants: '' (sigmoid DPO), 'ipo', 'nca' (nca_pair), 'rpo' (+ NLL of the
chosen responses, weight 1; Pang et al. 2024), 'debug' (random tiny
policy, seconds); comma-separated.
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.base()
  config_defaults.policy_source(c)  # SFT workdir / HF folder, or random.

  c.data = config_defaults.synthetic_data(num_train=2048)
  # correct_threshold (default 1.0): reward >= it counts as correct.
  c.reward = dict(kind='synthetic', accuracy=1.0)

  # Pair building (once, with the initial policy).
  c.num_candidates = 8  # K samples per prompt.
  c.max_pairs_per_prompt = 1  # Distinct wrong samples used per prompt.
  c.max_new_tokens = 64  # Also the held-out evaluation's budget.
  c.temperature = 1.0
  c.top_p = 1.0
  c.stop_strings = ()
  c.sample_batch_prompts = 64

  # Loss (TRL DPOTrainer semantics).
  c.beta = 0.1
  c.loss_type = 'sigmoid'  # sigmoid | ipo | nca_pair
  c.label_smoothing = 0.0  # cDPO / robust DPO; sigmoid only.
  c.rpo_alpha = 0.0  # RPO: + alpha * token-mean NLL of the chosen responses.
  c.pairs_per_step = 32
  c.grad_accum_steps = 1
  c.max_seq_len = 0  # Cut pairs to this many tokens (0: no limit).

  c.total_steps = ml_collections.FieldReference(200)
  c.optim = dict(name='adamw', lr=1e-4, schedule='warmup_cosine',
                 warmup_steps=10, end_lr_ratio=0.1, b1=0.9, b2=0.99,
                 weight_decay=0.0, clip_norm=1.0)
  c.optim.total_steps = c.get_ref('total_steps')
  c.checkpoint_every = 50
  c.log_every = 5
  c.eval_before = True
  c.eval_after = True

  for v in arg.split(',') if arg else []:
    if v == 'ipo':
      c.loss_type = 'ipo'
      c.beta = 0.5
    elif v == 'nca':
      c.loss_type = 'nca_pair'
    elif v == 'rpo':
      c.rpo_alpha = 1.0
    elif v == 'debug':
      c.policy = ''
      c.data.num_train = 8
      c.data.num_eval = 4
      c.num_candidates = 2
      c.max_new_tokens = 8
      c.sample_batch_prompts = 8
      c.pairs_per_step = 8
      c.total_steps = 2
      c.optim.warmup_steps = 1
      c.checkpoint_every = 1
      c.log_every = 1
    else:
      raise ValueError(f'Unknown variant {v!r}: expected ipo, nca, rpo, debug '
                       '(comma-separated)')
  return c
