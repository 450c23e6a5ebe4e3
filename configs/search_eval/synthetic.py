r"""Test-time search on held-out synthetic problems: accuracy against N.

  python experiments/search_eval.py --config=configs/search_eval/synthetic.py \
      --workdir=runs/search_eval --config.policy=runs/sft
  # Seconds, with a random tiny policy:
  python experiments/search_eval.py \
      --config=configs/search_eval/synthetic.py:debug --workdir=/tmp/search

Variants (comma-separated): '' (N = 1..16, oracle verifier), 'predicted'
(compute-optimal bins from verifier scores instead of pass@1), 'lookahead'
(beam search scores each step after one more greedy step), 'debug'.
`verifier.kind`: 'oracle' (exact step checker, an upper bound), 'none',
'prm' (a trained PRM or ORM: --config.verifier.path=runs/prm) or 'thinkprm'
(--config.verifier.path=runs/thinkprm); more register in
`jaxreason.recipes.search_eval.VERIFIERS`.
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.base()
  config_defaults.policy_source(c)  # SFT workdir / HF folder, or random.
  c.data = config_defaults.synthetic_data(num_train=0, num_eval=200)

  c.verifier = dict(kind='oracle', path='', batch_size=16, num_chains=1,
                    max_chain_tokens=256, cache_size=1024)
  c.methods = ('greedy', 'majority', 'best_of_n', 'weighted_best_of_n',
               'beam_search', 'dvts')
  c.ns = (1, 2, 4, 8, 16)
  # Step-score aggregation per method (last | min | prod | mean).
  c.aggregation = dict(best_of_n='last', weighted_best_of_n='last',
                       beam_search='last', dvts='last')
  c.beam = dict(width=4, lookahead=0, max_iterations=20, dedupe=True)
  c.dvts = dict(width=4, max_iterations=20)
  c.temperature = 1.0
  c.top_p = 1.0
  c.max_new_tokens = 80  # Per candidate (a 4-step solution is ~40 tokens).
  c.max_step_tokens = 24
  c.batch_problems = 50  # Problems searched together (rows: this x N).
  c.compute_optimal = dict(difficulty='oracle', samples=4, num_bins=4)
  c.save_candidates = False

  for v in (arg.split(',') if arg else []):
    if v == 'predicted':
      c.compute_optimal.difficulty = 'predicted'
    elif v == 'lookahead':
      c.beam.lookahead = 1
    elif v == 'debug':
      c.policy = ''
      c.data.num_eval = 4  # 4 x N <= 8 rows: one compiled decode loop.
      c.ns = (1, 2)
      c.max_new_tokens = 12
      c.max_step_tokens = 6
      c.beam.max_iterations = 3
      c.dvts.max_iterations = 3
      c.compute_optimal.num_bins = 2
      c.compute_optimal.samples = 2
      c.save_candidates = True
    else:
      raise ValueError(f'Unknown variant {v!r}: expected predicted, '
                       'lookahead, debug (comma-separated)')
  return c
