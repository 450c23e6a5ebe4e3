r"""DPO on semi-on-policy preference pairs.

  python experiments/dpo.py --config=configs/dpo/synthetic.py:debug \
      --workdir=/tmp/dpo_debug

Running again with the same --workdir resumes (the pairs are read back from
workdir/pairs.jsonl). Multi-host: add --multihost.
"""

import json

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxreason.recipes import dpo
from jaxreason.sharding.mesh import maybe_initialize_distributed
from jaxreason.train.loop import quiet_library_logs

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Checkpoints and logs.')
_MULTIHOST = flags.DEFINE_bool('multihost', False,
                               'Call jax.distributed.initialize() first.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  maybe_initialize_distributed(_MULTIHOST.value)
  quiet_library_logs()
  result = dpo.train(_CONFIG.value, _WORKDIR.value)
  summary = {k: result[k]['accuracy'] for k in ('eval_before', 'eval_after')
             if k in result}
  print(json.dumps({'pairs': result['pairs'],
                    'held_out_greedy_pass@1': summary,
                    'final_metrics': result['final_metrics']}, indent=1))


if __name__ == '__main__':
  app.run(main)
