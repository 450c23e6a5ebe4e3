"""The flags every experiment shares, and how it runs a recipe.

  python experiments/<name>.py --config=configs/<name>/<variant>.py[:arg] \
      --workdir=DIR [--multihost] [--config.field=value ...]
  python -m experiments.<name> ...      # the same, from the repository root

Each experiment file names its recipe's `train(config, workdir)` and how to
print the result; running it again with the same --workdir resumes.
"""

from typing import Any, Callable

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxreason.sharding.mesh import maybe_initialize_distributed
from jaxreason.train.run_context import quiet_library_logs

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Checkpoints and logs.')
_MULTIHOST = flags.DEFINE_bool('multihost', False,
                               'Call jax.distributed.initialize() first.')
flags.mark_flags_as_required(['config', 'workdir'])


def run(train: Callable[[Any, str], dict],
        report: Callable[[dict], None]) -> None:
  """Parses flags, then `report(train(config, workdir))`."""

  def main(argv):
    del argv
    maybe_initialize_distributed(_MULTIHOST.value)
    quiet_library_logs()
    report(train(_CONFIG.value, _WORKDIR.value))

  app.run(main)


def eval_summary(result: dict) -> dict:
  """Held-out pass@1 before / after, for recipes that evaluate twice."""
  return {k: result[k]['accuracy'] for k in ('eval_before', 'eval_after')
          if k in result}
