"""World-model imitation from observation: the study's stages, one entry point.

`train(config, workdir)` runs `config.stage`:

  expert    SAC expert; demonstrations and embodiment data (stages.py)
  bco       BCO(0) and BC baselines (stages.py)
  pretrain  world model on the embodiment data
  aime      AIME: policy by maximising the demonstrations' evidence under the
            frozen world model (Zhang et al., 2023)
  aime_v2   AIME-v2: online, with the embodiment data as a regulariser and a
            surrogate reward from the demonstrations (Zhang et al., 2025)
"""

from __future__ import annotations

from typing import Any

import ml_collections

from jaxreason.imitation import stages
from jaxreason.imitation import world_model_stages as wm_stages

STAGES = {
    'expert': stages.run_expert,
    'bco': stages.run_bco,
    'pretrain': wm_stages.run_pretrain,
    'aime': wm_stages.run_aime,
    'aime_v2': wm_stages.run_aime_v2,
}


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  if config.stage not in STAGES:
    raise ValueError(f'config.stage={config.stage!r}; expected one of '
                     f'{sorted(STAGES)}')
  return STAGES[config.stage](config, workdir)
