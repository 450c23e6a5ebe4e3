"""Model-in-the-loop pieces of RL: rollouts and model-scored data selection.

  rollout.py    G samples per prompt -> rewards -> the fixed-shape RL batch
  selection.py  LIMR scores, pass-rate filters (sample, reward, select)

They sit above `sampling` (they call the sampler) and below `recipes`.
"""
