r"""The whole reasoning pipeline on the synthetic task (recipes/quickstart.py).

  python experiments/quickstart.py --config=configs/quickstart.py \
      --workdir=runs/quickstart
  python experiments/quickstart.py --config=configs/quickstart.py:debug \
      --workdir=/tmp/qs_debug
  # Some stages only (the earlier ones must have finished in the workdir):
  python experiments/quickstart.py --config=configs/quickstart.py \
      --workdir=runs/quickstart --config.stages=eval,report

Each stage's sub-config is the config of its own experiment
(configs/sft/synthetic.py, configs/prm/synthetic.py, ...), shrunk to fit the
15-minute budget on a 2-core CPU, and overridable as usual
(--config.sft.total_steps=800, --config.grpo.total_steps=100, ...). The
task mixes chain lengths 2-5 (4 in the experiments' own configs), so the
held-out accuracy can be read by difficulty.

Variants: '' (the demonstration: about 15 minutes on 2 CPU cores),
'debug' (random tiny models, every stage for a step or two: under 2
minutes; what make test and the notebook run).
"""

import ml_collections

from configs.grpo import synthetic as grpo_config
from configs.prm import synthetic as prm_config
from configs.sft import synthetic as sft_config
from configs.thinkprm import synthetic as thinkprm_config
from configs.tir import synthetic as tir_config
from jaxreason import config_defaults

STAGES = ('tokenizer', 'sft', 'prm', 'thinkprm', 'grpo', 'tir', 'eval',
          'report')


def task() -> dict:
  """Mod-10 chains of 2 to 5 steps in the bare form."""
  return dict(config_defaults.synthetic_task(), num_steps=(2, 3, 4, 5))


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  variants = config_defaults.variants(arg, {'debug'})
  debug = 'debug' in variants
  sub = 'debug' if debug else ''
  c = config_defaults.base()
  c.stages = STAGES
  # SentencePiece BPE on the task's texts (recipes/quickstart.py).
  c.tokenizer = dict(vocab_size=160, num_texts=20_000)

  c.sft = sft_config.get_config(sub)
  c.sft.data.task = task()
  c.sft.data.num_eval = 100
  # 500 steps: 0.815 held-out greedy in one run; 400 steps gave 0.37 (the
  # cosine schedule ends before this seed's model finds the rule).
  c.sft.total_steps = 500
  c.sft.log_every = 25

  c.prm = prm_config.get_config(sub)
  c.prm.data.task = task()
  c.prm.total_steps = 300
  c.prm.log_every = 20
  c.prm.eval.num = 64

  c.thinkprm = thinkprm_config.get_config(sub)
  c.thinkprm.data.task = task()
  c.thinkprm.total_steps = 150
  c.thinkprm.seq_len = 384
  c.thinkprm.eval.update(num_solutions=32, scaling=(), baseline=False)

  c.grpo = grpo_config.get_config(sub)
  c.grpo.data.task = task()
  c.grpo.data.num_eval = 0  # The eval stage measures; no eval inside GRPO.
  c.grpo.eval_before = False
  c.grpo.total_steps = 50
  c.grpo.checkpoint_every = 25

  c.tir = tir_config.get_config(sub)
  c.tir.total_steps = 400
  # At the tir config's 2e-3 the tool model copied the operands but not the
  # operators into its program (0.07 held-out); at 1e-3 it copies both.
  c.tir.optim.lr = 1e-3
  c.tir.data.num_eval = 100

  c.search = config_defaults.search_eval('synthetic', sub)
  c.search.data.task = task()
  c.search.data.num_eval = 200
  c.search.ns = (1, 2, 4, 8)
  # Samples for voting and verifiers at 0.7 (GRPO trains at 1.0, where this
  # policy's sampled pass@1 is far below its greedy accuracy).
  c.search.temperature = 0.7
  # One search_eval run per entry, all on the same problems and seeds.
  c.eval = dict(runs=dict(
      sft=dict(policy='sft', verifier='none', methods=('greedy', 'majority')),
      grpo_prm=dict(policy='grpo', verifier='prm',
                    methods=('greedy', 'majority', 'best_of_n',
                             'weighted_best_of_n', 'beam_search')),
      grpo_thinkprm=dict(policy='grpo', verifier='thinkprm',
                         methods=('best_of_n', 'weighted_best_of_n'))))

  if debug:
    c.tokenizer.num_texts = 400
    for name in ('sft', 'tir'):
      c[name].total_steps = 2
    c.sft.data.num_eval = 4
    c.prm.total_steps = 2
    c.thinkprm.total_steps = 2
    c.grpo.total_steps = 2
    c.grpo.checkpoint_every = 1
    c.tir.data.num_eval = 4
    c.search.data.num_eval = 4
    c.search.ns = (1, 2)
  return c
