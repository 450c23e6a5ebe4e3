"""Latent world models (RSSM, Dreamer-style) for model-based imitation.

See `rssm.py` for the state layout and the action alignment convention
(`actions[:, t]` is the action taken before `obs[:, t]`).
"""

from jaxreason.models.world_model.networks import (ConvDecoder, ConvEncoder,
                                                   MLP, MLPDecoder, MLPEncoder,
                                                   ScalarHead)
from jaxreason.models.world_model.rssm import (RSSM, LayerNormGRUCell,
                                               RSSMConfig, RSSMState, features)
from jaxreason.models.world_model.world_model import (WorldModel,
                                                      WorldModelConfig,
                                                      WorldModelFns,
                                                      make_world_model_loss,
                                                      world_model_fns,
                                                      world_model_loss)

__all__ = [
    'ConvDecoder', 'ConvEncoder', 'LayerNormGRUCell', 'MLP', 'MLPDecoder',
    'MLPEncoder', 'RSSM', 'RSSMConfig', 'RSSMState', 'ScalarHead',
    'WorldModel', 'WorldModelConfig', 'WorldModelFns', 'features',
    'make_world_model_loss', 'world_model_fns', 'world_model_loss',
]
