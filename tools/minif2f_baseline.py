r"""miniF2F prover-alone baseline: parse the Isabelle test statements, check
each with no subgoals, write per-problem status and counts as JSON.

  python tools/minif2f_baseline.py --out=benchmarks/minif2f_baseline.json \
      --timeout_s=5 [--data_dir=PATH]

See jaxreason/prover/minif2f.py and docs/prover.md.
"""

import sys

from jaxreason.prover import minif2f

if __name__ == '__main__':
  minif2f.main(sys.argv[1:])
