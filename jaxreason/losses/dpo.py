"""DPO losses over summed completion log-probs (semantics of TRL's DPOTrainer).

With h = (pi_c - pi_r) - (ref_c - ref_r) (chosen c, rejected r):
  sigmoid   -(1 - ls) log s(beta h) - ls log s(-beta h)   (ls: label smoothing)
  ipo       (h - 1 / (2 beta))^2    (TRL feeds *mean* token log-probs here:
            pass them with `average_log_prob=True` upstream)
  nca_pair  -log s(beta (pi_c - ref_c)) - 0.5 log s(-beta (pi_c - ref_c))
            - 0.5 log s(-beta (pi_r - ref_r))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array
LOSS_TYPES = ('sigmoid', 'ipo', 'nca_pair')


def dpo_loss(policy_chosen_logps: Array, policy_rejected_logps: Array,
             ref_chosen_logps: Array, ref_rejected_logps: Array, *,
             beta: float = 0.1, loss_type: str = 'sigmoid',
             label_smoothing: float = 0.0) -> tuple[Array, dict[str, Array]]:
  """All inputs [B] (sequence log-probs). Returns (mean loss, metrics)."""
  if loss_type not in LOSS_TYPES:
    raise ValueError(f'loss_type={loss_type!r}: expected one of {LOSS_TYPES}')
  chosen = policy_chosen_logps - ref_chosen_logps  # [B]
  rejected = policy_rejected_logps - ref_rejected_logps  # [B]
  h = chosen - rejected
  ls = jax.nn.log_sigmoid
  if loss_type == 'sigmoid':
    losses = (-ls(beta * h) * (1.0 - label_smoothing)
              - ls(-beta * h) * label_smoothing)
  elif loss_type == 'ipo':
    losses = (h - 1.0 / (2.0 * beta)) ** 2
  else:
    losses = (-ls(beta * chosen) - 0.5 * ls(-beta * chosen)
              - 0.5 * ls(-beta * rejected))
  chosen_r = jax.lax.stop_gradient(beta * chosen)
  rejected_r = jax.lax.stop_gradient(beta * rejected)
  metrics = {
      'rewards/chosen': chosen_r.mean(),
      'rewards/rejected': rejected_r.mean(),
      'rewards/accuracies': (chosen_r > rejected_r).astype(jnp.float32).mean(),
      'rewards/margins': (chosen_r - rejected_r).mean(),
  }
  return losses.mean(), metrics
