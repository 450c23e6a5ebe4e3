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
`jaxreason.recipes.search_eval.VERIFIERS`. The same search on a real
benchmark: configs/search_eval/benchmark.py:NAME.
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  return config_defaults.search_eval('synthetic', arg)
