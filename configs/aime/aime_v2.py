r"""AIME-v2 (online), the same as configs/aime/aime.py:TASK,v2[,ablation].

  python experiments/aime.py --config=configs/aime/aime_v2.py:walker-stand \
      --workdir=runs/aime/walker-stand/aime_v2 \
      --config.data_dir=runs/aime/walker-stand/expert/data \
      --config.world_model_dir=runs/aime/walker-stand/wm \
      --config.demo_model_dir=runs/aime/walker-stand/demo_wm

A separate file so that `:debug` runs the online loop in tests.
Argument: TASK[,no_reg|no_reward|adversarial][,debug].
"""

import importlib.util
import os


def get_config(arg: str = ''):
  spec = importlib.util.spec_from_file_location(
      'aime_config', os.path.join(os.path.dirname(__file__), 'aime.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  parts = [p for p in arg.split(',') if p] if arg else []
  if parts and '-' in parts[0]:
    parts.insert(1, 'v2')
  else:
    parts.insert(0, 'v2')
  return module.get_config(','.join(parts))
