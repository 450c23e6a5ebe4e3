"""World-model imitation from observation (AIME, AIME-v2) and its baselines.

Modules (import them directly; this package imports nothing on its own so that
a state-only user does not pay for dm_control or the world model):

  envs       DeepMind Control Suite wrapper (`make_env`, `run_episode`).
  episodes   The episode record format, its files and the `ReplayBuffer`.
  networks   tanh-Gaussian actor and twin-Q critic (Flax linen, on the
             shared models/world_model MLP).
  data       environments, the datasets of the study, evaluation.
  agent      world-model agents: models on disk, acting, batches.
  objectives the stages' steps as train.step losses; whole-episode
             surrogate reward (AIME-v2).
  sac        Soft actor-critic on state observations (the expert).
  bco        Behavioural cloning (BC) and BC from observation (BCO(0)).
  aime       The AIME / AIME-v2 losses (with models/world_model/).
"""
