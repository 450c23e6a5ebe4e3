r"""Hint-RFT (START) on the synthetic tool-use task.

  python experiments/tir.py --config=configs/tir/synthetic.py --workdir=runs/tir
  python experiments/hint_rft.py --config=configs/hint_rft/synthetic.py \
      --workdir=runs/hint_rft --config.init_workdir=runs/tir
  python experiments/hint_rft.py --config=configs/hint_rft/synthetic.py:debug \
      --workdir=/tmp/hint_rft_debug

Plain and hinted inference of the policy (`init_workdir`, e.g. the tool
model of configs/tir) on training problems, the hinted trajectories that
are right where the plain ones are wrong (minus repetitive ones) as SFT
data, a short fine-tune, then rejection sampling from the fine-tuned model
(jaxreason/recipes/hint_rft.py; counts in WORKDIR/hint_rft.json).

Variants: '' (the round above), 'debug' (a random tiny policy, every
hinted trajectory kept, 2 SFT steps: seconds).
"""

import ml_collections

from jaxreason import config_defaults
from jaxreason.reasoning import hints


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.base()
  c.init_workdir = ''  # The policy (a jaxreason workdir); '' random `model`.
  c.tokenizer = dict(kind='char')
  c.model = config_defaults.small_model()
  config_defaults.sft_training(c, total_steps=200)
  c.optim.update(lr=3e-4, warmup_steps=20)
  c.checkpoint_every = 100
  c.task = dict(num_steps=2, min_operand=10, max_operand=99, modulus=None,
                ops=('+', '-', '*'), word_problem=False)
  c.prompt = 'expression'  # As configs/tir/synthetic.py.
  c.data = dict(num_problems=256, seed=1)
  c.n = 4  # Samples per problem, plain and hinted.
  c.temperature = 0.7
  c.max_new_tokens = 96
  c.cache_size = 256
  c.batch_prompts = 64  # Rows per decode batch.
  c.tools = dict(enabled=True, max_calls=2, timeout_s=5.0, memory_mb=256,
                 max_output_chars=64, workers=4)
  # Hint-infer: a hint where the model would stop (jaxreason.reasoning.hints).
  c.hints = dict(stop_hints=hints.DEFAULT_HINTS[:1], words=(), word_hints=(),
                 max_hints=1, min_tokens_left=24, separator='\n')
  c.filter = dict(keep='hint_wins', ngram=4, max_repetition=0.3)
  # Rejection sampling from the fine-tuned model (hints: also hinted).
  c.rft = dict(num_problems=128, n=4, temperature=0.7, hints=False)

  variants = config_defaults.variants(arg, {'debug'})
  if 'debug' in variants:
    config_defaults.sft_debug(c)
    c.eval_max_new_tokens = 0
    c.init_workdir = ''
    c.data.num_problems = 4
    c.n = 2
    c.max_new_tokens = 12
    c.cache_size = 64
    c.batch_prompts = 8
    c.hints.min_tokens_left = 0
    c.filter.keep = 'all'
    c.filter.max_repetition = 1.0
    c.rft.update(num_problems=2, n=2)
  return c
