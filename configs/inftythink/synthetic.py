r"""InftyThink on long synthetic chains: a short-context model vs monolithic.

  python experiments/inftythink.py --config=configs/inftythink/synthetic.py \
      --workdir=runs/infty
  python experiments/inftythink.py \
      --config=configs/inftythink/synthetic.py:monolithic --workdir=runs/mono
  python experiments/inftythink.py \
      --config=configs/inftythink/synthetic.py:debug --workdir=/tmp/infty_dbg

Variants (comma-separated): '' (12-step mod-10 chains written as a trace
of 2 paragraphs per step, segments of eta=60 tokens (3 steps) with exact
summaries; the model trains on 256-token rows and decodes with a 256-token
cache per iteration, while prompt + whole trace is 368 tokens),
'monolithic' (the same model size trained on whole traces, 384-token rows;
evaluated with a 384-token cache and with the 256-token one, which
truncates), 'debug' (a tiny model, 2 steps, 3-step chains, seconds).
See jaxreason/recipes/inftythink.py and docs/inftythink.md.
"""

import ml_collections

from jaxreason import config_defaults

VARIANTS = ('debug', 'monolithic')


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  variants = config_defaults.variants(arg, VARIANTS)
  c = config_defaults.base()
  c.mode = 'inftythink'  # inftythink | monolithic
  c.tokenizer = dict(kind='char')
  c.task = config_defaults.synthetic_task()
  c.task.num_steps = 12
  c.data = dict(num_train=6000, num_eval=128, seed=0)
  c.eta = 60  # Segment token budget (the crossing paragraph stays in).
  c.model = config_defaults.small_model()
  c.model.max_position_embeddings = 1024
  config_defaults.sft_training(c, total_steps=900)
  c.seq_len = 256  # The short context: every instance fits, no whole trace.
  c.batch_size = 32
  c.optim.warmup_steps = 100
  # 1e-3: at the SFT default 3e-3 neither model left its loss plateau in
  # 900 steps (benchmarks/inftythink_synthetic/summary_lr3e-3.json).
  c.optim.lr = 1e-3
  c.log_every = 25
  c.checkpoint_every = 200
  c.eval = dict(cache_size=256,  # InftyThink: tokens per iteration.
                max_iterations=8, max_new_tokens=192,
                cache_sizes=(384, 256),  # Monolithic: one decode per size.
                batch_size=64, num_samples_shown=3)

  if 'monolithic' in variants:
    c.mode = 'monolithic'
    c.seq_len = 384  # Prompt + the whole 12-step trace (368 tokens).
    c.batch_size = 21  # About the same tokens per step as 32 x 256.
  if 'debug' in variants:
    config_defaults.sft_debug(c)
    c.task.num_steps = 3
    c.data.update(num_train=32, num_eval=4)
    c.eta = 40
    c.seq_len = 192
    c.eval.update(cache_size=192, max_iterations=3, max_new_tokens=64,
                  cache_sizes=(192, 64), batch_size=8, num_samples_shown=1)
  return c
