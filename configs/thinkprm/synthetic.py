r"""ThinkPRM on the synthetic arithmetic task: chains from 1% of the labels.

  python experiments/thinkprm.py --config=configs/thinkprm/synthetic.py \
      --workdir=/tmp/thinkprm \
      --config.init_workdir=runs/results/quickstart_seed0
  python experiments/thinkprm.py --config=configs/thinkprm/synthetic.py:debug \
      --workdir=/tmp/thinkprm_debug

ThinkPRM sees the step labels of `label_fraction` x `prm_num_solutions`
solutions (500 solutions, about 2260 step labels with the answer blocks),
through the chains the teacher writes and the filter keeps. (configs/prm/
synthetic.py in fact trains on 16384 solutions, 81920 step labels: this is
2.8% of them; docs/thinkprm.md.) The run in benchmarks/thinkprm_synthetic.json
trained these 200 steps, then --config.total_steps=400 on the same workdir
(F1 still 0.000 greedy). The teacher is a programmatic noisy verifier
(`noisy_arithmetic`, a stand-in for QwQ-32B); the verifier is the
quickstart's 0.31M-parameter model (char tokenizer), fine-tuned from the
quickstart SFT policy when --config.init_workdir points to it.

Variants: '' (default), 'debug' (seconds).
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.base()
  c.tokenizer = dict(kind='char')
  c.data = config_defaults.synthetic_data(num_train=0)  # task and seed.
  c.model = config_defaults.small_model()
  config_defaults.sft_training(c, total_steps=200)
  c.seq_len = 512  # Prompt + chain + answer: about 400 characters.
  c.batch_size = 16
  c.optim.update(lr=1e-3, warmup_steps=20)
  c.checkpoint_every = 100
  c.eval_max_new_tokens = 0  # SFT's own answer eval: not for chains.
  c.init_workdir = ''  # e.g. runs/results/quickstart_seed0 (same model).

  c.thinkprm = dict(
      prm_num_solutions=50_000,  # What the discriminative PRM trains on.
      label_fraction=0.01,
      num_chains=4,  # Teacher chains per solution.
      max_chain_tokens=320,  # Longer chains are dropped.
      flawed_prob=0.5, prefix_prob=0.25,
      # P(first error at step k) ~ decay**k: early errors leave more chain
      # lines that must be recomputed, not restated (1.0: uniform).
      error_step_decay=0.5)
  c.teacher = dict(kind='noisy_arithmetic', slip_prob=0.1,
                   # kind='policy': a workdir / HF folder to sample from.
                   policy='', cache_size=1024, max_new_tokens=320,
                   temperature=0.7)
  c.eval = dict(
      # The PRM's held-out ProcessBench-format sets ('dev', 'test'), each
      # num_solutions records (processbench.synthetic_dev_test, seed).
      num_solutions=128, seed=0,
      num_chains=1, num_rounds=1, temperature=0.0,  # Greedy, one chain.
      max_chain_tokens=288, token_budget=0, cache_size=768, batch_size=32,
      # (name, K chains, R rounds), sampled at scaling_temperature.
      scaling=(('k4', 4, 1), ('r2', 1, 2)), scaling_temperature=0.7,
      baseline=True)  # The starting policy as a zero-shot LLM judge.

  variants = config_defaults.variants(arg, {'debug'})
  if 'debug' in variants:
    config_defaults.sft_debug(c)
    c.seq_len = 512
    c.eval_max_new_tokens = 0
    c.thinkprm.update(prm_num_solutions=800, num_chains=2)
    c.eval.update(num_solutions=2, max_chain_tokens=8, cache_size=512,
                  batch_size=2, scaling=(('k2r2', 2, 2),), baseline=False)
  return c
