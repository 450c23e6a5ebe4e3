r"""Test-time search on a real benchmark (its test split, graded by the grader).

  python experiments/search_eval.py \
      --config=configs/search_eval/benchmark.py:math500 \
      --workdir=runs/search_math500 --config.policy=/ckpt/Qwen2.5-1.5B \
      --config.verifier.kind=prm --config.verifier.path=runs/prm \
      --config.methods=greedy,majority,best_of_n,beam_search,dvts
  # Seconds: a random tiny model on 4 problems (the file is still read).
  python experiments/search_eval.py \
      --config=configs/search_eval/benchmark.py:gsm8k,debug \
      --workdir=/tmp/search_gsm8k

One variant names the benchmark: math500 (the default), aime24, aime25,
amc23 or gsm8k (read from --config.data.data_dir, else $JAXREASON_DATA, else
../shared/data). Defaults: greedy and majority (no verifier: a benchmark
has no step checker), N = 1..16 at temperature 0.6, top-p 0.95, up to 2048
tokens, Qwen2.5-Math's chat prompt; see
`jaxreason.config_defaults.search_eval`. Other variants: 'predicted',
'lookahead', 'debug' (comma-separated).
"""

import ml_collections

from jaxreason import config_defaults

BENCHMARKS = ('math500', 'aime24', 'aime25', 'amc23', 'gsm8k')


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  names = [v for v in arg.split(',') if v] if arg else []
  chosen = [v for v in names if v in BENCHMARKS]
  if len(chosen) > 1:
    raise ValueError(f'configs/search_eval/benchmark.py:{arg}: name one '
                     f'benchmark, got {chosen}')
  rest = ','.join(v for v in names if v not in BENCHMARKS)
  return config_defaults.search_eval(chosen[0] if chosen else 'math500',
                                     rest)
