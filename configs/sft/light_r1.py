r"""Light-R1-style curriculum SFT: two stages, the second on harder problems.

Light-R1 (Wen et al., 2025) fine-tunes in stages: stage 1 on a large set of
problems, stage 2 from the stage-1 model on the smaller subset that model
still does not solve reliably (its pass rate over n samples is in [lo, hi]),
then DPO on its own wrong answers. Here on the synthetic arithmetic task:

  python experiments/sft.py --config=configs/sft/light_r1.py:stage1 \
      --workdir=runs/light_r1_stage1
  python experiments/sft.py --config=configs/sft/light_r1.py:stage2 \
      --workdir=runs/light_r1_stage2 --config.init_workdir=runs/light_r1_stage1
  python experiments/dpo.py --config=configs/dpo/synthetic.py \
      --workdir=runs/light_r1_dpo --config.policy=runs/light_r1_stage2

Stage 2 starts from stage 1's latest params (`init_workdir`, a jaxreason
workdir; fresh optimizer) and draws a new pool of problems (`data.seed`),
filtered by the pass rate of the stage-1 model (`data.filter.policy` ''
means init_workdir); the kept indices are saved in workdir/data_filter.json.
Stage 1 can be filtered too (Light-R1 filters its stage-1 data by a smaller
model's pass rate): --config.data.filter.kind=pass_rate
--config.data.filter.policy=runs/sft.

Variants: 'stage1' (default), 'stage2', each with ',debug' to shrink it.
'debug' alone is 'stage2,debug' with init_workdir='' (a random start, and
the filter samples a random model) so that it runs from a clean checkout.
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  variants = arg.split(',') if arg else []
  stage = 'stage2' if variants == ['debug'] else 'stage1'
  for v in variants:
    if v in ('stage1', 'stage2'):
      stage = v
    elif v != 'debug':
      raise ValueError(f'Unknown variant {v!r}: expected stage1, stage2, '
                       'debug (comma-separated)')
  debug = 'debug' in variants

  c = config_defaults.base()
  c.tokenizer = dict(kind='char')
  c.data = config_defaults.synthetic_data(
      num_train=50_000,
      # Difficulty filter (off unless kind='pass_rate'): keep the problems
      # whose pass rate under `policy` over n samples is in [lo, hi].
      filter=dict(kind='', policy='', n=8, lo=0.0, hi=0.75,
                  max_new_tokens=64, temperature=1.0, batch_prompts=64,
                  reward=dict(kind='synthetic', accuracy=1.0)))
  c.model = config_defaults.small_model()
  config_defaults.sft_training(c, total_steps=800)
  c.init_workdir = ''  # A jaxreason workdir to start from (stage 2).

  if stage == 'stage2':
    c.init_workdir = 'runs/light_r1_stage1'
    c.data.seed = 1  # A new pool of problems ...
    c.data.num_train = 4096
    c.data.filter.kind = 'pass_rate'  # ... that stage 1 does not master.
    c.total_steps = 300
    c.optim.update(lr=1e-3, warmup_steps=20)

  if debug:
    config_defaults.sft_debug(c)
    c.data.num_train = 32
    c.data.filter.update(n=2, max_new_tokens=8, batch_prompts=32)
    if variants == ['debug']:
      c.init_workdir = ''
  return c
