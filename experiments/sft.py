r"""Supervised fine-tuning.

  python experiments/sft.py --config=configs/sft/synthetic.py:debug \
      --workdir=/tmp/sft_debug

Running again with the same --workdir resumes from the latest checkpoint.
Multi-host (TPU pod slice): add --multihost on every host.
"""

import json

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jaxreason.recipes import sft
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
  result = sft.train(_CONFIG.value, _WORKDIR.value)
  logging.info('Result: %s', json.dumps(
      {k: v for k, v in result.items()}, indent=1, default=str))
  if 'eval' in result:
    for s in result['eval']['samples']:
      print(s['prompt'] + s['completion'] + f"   [gold {s['answer']}]\n")
    print(f"held-out greedy accuracy: {result['eval']['accuracy']:.3f} "
          f"on {result['eval']['num_problems']} problems")


if __name__ == '__main__':
  app.run(main)
