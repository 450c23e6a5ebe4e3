"""AIME and AIME-v2: imitation from observation with a pretrained world model.

AIME (Zhang, Becker-Ehmck, van der Smagt, Karl 2023, "Action Inference by
Maximising Evidence: Zero-Shot Imitation from Observation with World
Models", NeurIPS) imitates demonstrations that hold observations but no
actions. Phase 1 trains a world model p(o, s | a) on the embodiment's own
data (with actions), e.g. `world_model_loss`. Phase 2 freezes it and treats
the demonstrator's actions as latent variables whose variational posterior
is the policy: the policy maximises the ELBO of the demonstration,

  log p(o_{1:T}) >= sum_t E[log p(o_t | s_t)]
                      - KL(q(s_t | h_t, o_t) || p(s_t | h_t))
                      - KL(pi(a_{t-1} | s_{t-1}) || p(a))
  with h_t = f(h_{t-1}, s_{t-1}, a_{t-1}),  a_{t-1} ~ pi(. | s_{t-1}),

reparameterised, so gradients reach the policy only through its actions
(`aime_loss`). With a uniform action prior the last term is
E[log pi] + const (`action_entropy_weight`). Variant (`inverse_fn`): an
inverse-dynamics posterior q(a_{t-1} | s_{t-1}, o_t) samples the actions and
the policy is the action prior, trained through KL(q || pi) (a one-sample
estimate log q - log pi).

AIME-v2 (Zhang, Becker-Ehmck, van der Smagt, Karl 2025, "Overcoming
knowledge barriers: online imitation learning from visual observation with
pretrained world models") adds online interaction:
  1. an action-free world model (`WorldModelConfig(action_free=True)`) is
     trained on the demonstrations; its per-step evidence on the agent's own
     observations is the surrogate reward
       r_t = symlog(log p(o_t | s_t) - KL(q_t || p_t))   (`surrogate_reward`)
     high where the agent's observations look like the expert's;
  2. a reward head on the embodiment world model's features learns these
     rewards (`reward_head_loss`);
  3. a policy and a value function learn in imagination (Dreamer, Hafner et
     al. 2020): rollouts of horizon 15 from posterior states
     (`imagine_rollout`), lambda-returns with a target critic, the actor
     maximising them by backpropagating through the frozen dynamics
     (`actor_critic_losses`, `ema_update`).
An adversarial alternative to the surrogate reward (GAIL/DAC-style, used as
a baseline): a discriminator on observation embeddings (`discriminator_loss`,
with a gradient penalty) and the reward log D - log(1 - D)
(`adversarial_reward`).

World models enter as `WorldModelFns` (pure functions of explicit params,
see `jaxreason.models.world_model.world_model`), so any model with that
interface works, e.g. a hand-built linear-Gaussian system in the tests.
Policies are `policy_fn(params, features [N, F], rng) -> (action [N, A],
log_prob [N])`, reparameterised (e.g. tanh-Gaussian). Action alignment
follows the world model: the action fed at step t is a_{t-1}, chosen from
the state at t - 1; none is chosen at `is_first` (zeros, not counted).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxreason.losses import world_model as wm_losses
from jaxreason.models.world_model.rssm import RSSMState
from jaxreason.models.world_model.world_model import WorldModelFns

Array = jax.Array
# (params, features [N, F], rng) -> (action [N, A], log_prob [N])
PolicyFn = Callable[[Any, Array, Array], tuple[Array, Array]]
# (params, features [N, F], embed_t [N, E], rng) -> (action [N, A], log_q [N])
InverseFn = Callable[[Any, Array, Array, Array], tuple[Array, Array]]
# (params, features [N, F], action [N, A]) -> log_prob [N]
LogProbFn = Callable[[Any, Array, Array], Array]
# (params, x [N, ...]) -> [N]
ScalarFn = Callable[[Any, Array], Array]
PENALTIES = ('wgan_gp', 'r1', 'none')

_sg = jax.lax.stop_gradient


def _time_major(tree: Any) -> Any:
  return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), tree)


def flatten_states(states: RSSMState) -> RSSMState:
  """[B, T, ..] leaves -> [B * T, ..] (start states for imagination)."""
  return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), states)


def observe(wm: WorldModelFns, wm_params: Any, obs: Array,
            actions: Array | None, is_first: Array, rng: Array
            ) -> tuple[RSSMState, RSSMState]:
  """Filters obs [B, T, ..] with `wm.obs_step` in a scan: (post, prior) [B, T].

  Same keys as `RSSM.observe` (step t uses split(rng, T)[t]); actions may be
  None for action-free models.
  """
  b, t = is_first.shape
  embeds = wm.encode(wm_params, obs)

  def step(state, xs):
    embed, action, first, key = xs
    post, prior = wm.obs_step(wm_params, state, action, embed, first, key)
    return post, (post, prior)

  xs = _time_major((embeds, actions, is_first)) + (jax.random.split(rng, t),)
  _, (post, prior) = jax.lax.scan(step, wm.initial(wm_params, b), xs)
  return _time_major(post), _time_major(prior)


def aime_loss(wm_params: Any, policy_params: Any, wm: WorldModelFns,
              policy_fn: PolicyFn | None, demo_obs: Array, is_first: Array,
              rng: Array, *, free_nats: float = 0.0,
              kl_balance: float | None = None, kl_scale: float = 1.0,
              free_nats_mode: str = 'step', action_entropy_weight: float = 0.0,
              mask: Array | None = None, inverse_fn: InverseFn | None = None,
              inverse_params: Any = None,
              policy_log_prob_fn: LogProbFn | None = None,
              action_kl_weight: float = 1.0
              ) -> tuple[Array, dict[str, Array]]:
  """AIME phase 2: negative ELBO of action-free demonstrations (see top).

  The world model is frozen (`stop_gradient` on wm_params). Step t: the
  policy sees features of the previous posterior state and samples a_{t-1}
  (zeros where is_first), the model takes `obs_step` with it and the
  embedding of o_t; the loss is mean_t [-log p(o_t | s_t)] + kl_scale *
  KL loss (`kl_balanced`: with the defaults free_nats=0, kl_balance=None
  the plain KL with gradient through both prior and posterior).

  Args:
    wm_params: parameters of the (frozen) world model.
    policy_params: parameters of the policy (what this loss trains).
    wm: the world model as `WorldModelFns`.
    policy_fn: reparameterised policy; unused with `inverse_fn`.
    demo_obs: [B, T, ..] demonstration observations.
    is_first: [B, T] episode starts (step 0 of each sequence should be one,
      or the sequence starts from `wm.initial`).
    rng: key.
    free_nats, kl_balance, kl_scale, free_nats_mode: the state KL, see
      `jaxreason.losses.world_model.kl_balanced`.
    action_entropy_weight: weight of mean log pi(a | s) (the KL of the
      policy to a uniform action prior, up to a constant).
    mask: optional [B, T] step weights.
    inverse_fn, inverse_params: inverse-dynamics variant: actions come from
      q(a_{t-1} | s_{t-1}, e_t) = inverse_fn(inverse_params, features,
      embed_t, rng) and the loss adds action_kl_weight * mean(log q -
      log pi), with log pi from `policy_log_prob_fn`. Differentiate with
      respect to (policy_params, inverse_params).

  Returns:
    (loss, metrics): recon, kl, kl_loss, elbo, action_log_prob, action_kl
    (IDM variant), loss; all scalars.
  """
  wm_params = _sg(wm_params)
  if inverse_fn is not None and policy_log_prob_fn is None:
    raise ValueError('inverse_fn needs policy_log_prob_fn')
  b, t = is_first.shape
  embeds = wm.encode(wm_params, demo_obs)  # [B, T, E]

  def step(state, xs):
    embed, first, key = xs
    k_act, k_step = jax.random.split(key)
    feats = wm.features(state)
    if inverse_fn is None:
      action, log_prob = policy_fn(policy_params, feats, k_act)
      action_kl = jnp.zeros_like(log_prob)
    else:
      action, log_prob = inverse_fn(inverse_params, feats, embed, k_act)
      action_kl = log_prob - policy_log_prob_fn(policy_params, feats, action)
    action = jnp.where(first[:, None], 0.0, action)
    post, prior = wm.obs_step(wm_params, state, action, embed, first, k_step)
    return post, (post, prior, log_prob, action_kl)

  xs = (jnp.swapaxes(embeds, 0, 1), jnp.swapaxes(is_first, 0, 1),
        jax.random.split(rng, t))
  _, ys = jax.lax.scan(step, wm.initial(wm_params, b), xs)
  post, prior, log_prob, action_kl = _time_major(ys)

  recon_loglik = wm.log_likelihood(wm_params, wm.features(post), demo_obs)
  loss, metrics = wm_losses.elbo_loss(
      recon_loglik, post, prior, free_nats=free_nats, balance=kl_balance,
      kl_scale=kl_scale, free_nats_mode=free_nats_mode, mask=mask)
  # Steps with an action: not episode starts.
  act_mask = 1.0 - is_first.astype(jnp.float32)
  if mask is not None:
    act_mask = act_mask * mask.astype(jnp.float32)
  mean_log_prob = wm_losses.masked_mean(log_prob, act_mask)
  metrics['action_log_prob'] = mean_log_prob
  if inverse_fn is None:
    loss = loss + action_entropy_weight * mean_log_prob
  else:
    metrics['action_kl'] = wm_losses.masked_mean(action_kl, act_mask)
    loss = loss + action_kl_weight * metrics['action_kl']
  metrics['loss'] = loss
  return loss, metrics


def surrogate_reward(wm_params: Any, wm: WorldModelFns, obs: Array,
                     is_first: Array, rng: Array) -> Array:
  """AIME-v2 reward of obs [B, T, ..] under an action-free demo model: [B, T].

  r_t = symlog(log p(o_t | s_t) - KL(q(s_t | .) || p(s_t | .))) with s_t the
  posterior sample; no gradient.
  """
  wm_params = _sg(wm_params)
  post, prior = observe(wm, wm_params, obs, None, is_first, rng)
  loglik = wm.log_likelihood(wm_params, wm.features(post), obs)
  kl = wm_losses.gaussian_kl(post.mean, post.std, prior.mean, prior.std)
  return _sg(wm_losses.symlog(loglik - kl))


def reward_head_loss(wm_params: Any, wm: WorldModelFns, feats: Array,
                     targets: Array, mask: Array | None = None
                     ) -> tuple[Array, dict[str, Array]]:
  """0.5 * (reward_head(feats) - sg(targets))^2, mean over [B, T].

  feats [B, T, F]: the embodiment model's posterior features (pass
  `stop_gradient(feats)` to train the head alone); targets [B, T], e.g.
  `surrogate_reward` of the same observations.
  """
  pred = wm.reward(wm_params, feats)
  loss = wm_losses.masked_mean(0.5 * jnp.square(pred - _sg(targets)), mask)
  return loss, {'reward_loss': loss, 'reward_pred': wm_losses.masked_mean(
      pred, mask), 'reward_target': wm_losses.masked_mean(targets, mask)}


class Rollout(NamedTuple):
  """An imagined trajectory; N start states, horizon H."""
  states: RSSMState  # leaves [N, H + 1, ..]; states[:, 0] = start
  features: Array    # [N, H + 1, F]
  actions: Array     # [N, H, A]; actions[:, k] chosen at states[:, k]
  log_probs: Array   # [N, H]


def imagine_rollout(wm_params: Any, wm: WorldModelFns, policy_params: Any,
                    policy_fn: PolicyFn, start: RSSMState, horizon: int,
                    rng: Array) -> Rollout:
  """Rolls the prior from start (leaves [N, ..]) for `horizon` policy steps.

  Same keys as `RSSM.imagine`. Gradients flow to everything; the callers
  decide what to stop.
  """

  def step(state, key):
    k_act, k_step = jax.random.split(key)
    action, log_prob = policy_fn(policy_params, wm.features(state), k_act)
    nxt = wm.img_step(wm_params, state, action, k_step)
    return nxt, (nxt, action, log_prob)

  _, ys = jax.lax.scan(step, start, jax.random.split(rng, horizon))
  states, actions, log_probs = _time_major(ys)
  states = jax.tree.map(lambda s, x: jnp.concatenate([s[:, None], x], 1),
                        start, states)
  return Rollout(states, wm.features(states), actions, log_probs)


def actor_critic_losses(wm_params: Any, policy_params: Any, value_params: Any,
                        target_value_params: Any, wm: WorldModelFns,
                        policy_fn: PolicyFn, value_fn: ScalarFn,
                        start: RSSMState, rng: Array, *, horizon: int = 15,
                        gamma: float = 0.99, lambda_: float = 0.95,
                        actor_weight: float = 1.0, value_weight: float = 1.0,
                        entropy_weight: float = 1e-4,
                        reward_fn: Callable[[Array], Array] | None = None,
                        return_scale: Array | None = None,
                        scale_decay: float = 0.99, scale_floor: float = 1.0
                        ) -> tuple[Array, dict[str, Array]]:
  """Dreamer actor-critic in imagination (dynamics backpropagation).

  From `start` (posterior states, leaves [N, ..], e.g. `flatten_states(post)`;
  gradient stopped) the policy imagines H steps. With features f_0..f_H:
    r_k = reward(f_{k+1})      [N, H]   (wm.reward, or reward_fn(features))
    v_k = value_fn(target, f_k) [N, H + 1]
    R   = lambda_returns(r, v, gamma, lambda_)   [N, H]
    actor_loss = -mean(R) / S - entropy_weight * mean(-log pi(a_k | s_k))
    value_loss = mean(0.5 * (value_fn(value_params, sg(f_k)) - sg(R_k))^2)
    loss = actor_weight * actor_loss + value_weight * value_loss
  The world model and the target critic are frozen; the actor's gradient
  passes through rewards and target values into the imagined states and its
  actions. The two terms touch disjoint parameters, so one gradient of
  `loss` with respect to (policy_params, value_params) trains both.
  No continuation head: discounts are the constant gamma (dm_control).

  Return normalisation (DreamerV3, Hafner et al. 2023): with `return_scale`
  (the running scale, a float32 scalar; None: off, S = 1) the batch's range
  P95(R) - P5(R) (gradient stopped) updates it,
    scale' = scale_decay * return_scale + (1 - scale_decay) * range,
  and S = max(scale_floor, scale'). Dividing by S keeps the actor term's
  size independent of the reward's units, so the entropy bonus and the
  terms added to the actor loss (AIME's) keep their weight; returns
  smaller than the floor are not scaled up. The caller keeps scale'
  (metrics['return_scale']) for the next step.

  Returns:
    (loss, metrics): actor_loss, value_loss, entropy (one-sample estimate),
    return, reward, value means, loss, return_scale (scale'; 1 when off).
  """
  wm_params = _sg(wm_params)
  target_value_params = _sg(target_value_params)
  roll = imagine_rollout(wm_params, wm, policy_params, policy_fn,
                         jax.tree.map(_sg, start), horizon, rng)
  feats = roll.features  # [N, H + 1, F]
  if reward_fn is not None:
    rewards = reward_fn(feats[:, 1:])
  else:
    rewards = wm.reward(wm_params, feats[:, 1:])  # [N, H]
  target_values = value_fn(target_value_params, feats)  # [N, H + 1]
  discounts = jnp.full(rewards.shape, gamma, jnp.float32)
  returns = wm_losses.lambda_returns(rewards, target_values, discounts, lambda_)
  entropy = -roll.log_probs.mean()
  new_scale = jnp.ones((), jnp.float32)
  norm = jnp.ones((), jnp.float32)
  if return_scale is not None:
    lo, hi = jnp.percentile(_sg(returns), jnp.array([5.0, 95.0]))
    new_scale = scale_decay * return_scale + (1.0 - scale_decay) * (hi - lo)
    norm = jnp.maximum(scale_floor, new_scale)
  actor_loss = -returns.mean() / norm - entropy_weight * entropy
  values = value_fn(value_params, _sg(feats[:, :-1]))  # [N, H]
  value_loss = (0.5 * jnp.square(values - _sg(returns))).mean()
  loss = actor_weight * actor_loss + value_weight * value_loss
  return loss, {'actor_loss': actor_loss, 'value_loss': value_loss,
                'entropy': entropy, 'return': returns.mean(),
                'reward': rewards.mean(), 'value': values.mean(), 'loss': loss,
                'return_scale': new_scale}


def ema_update(target: Any, online: Any, tau: float) -> Any:
  """target <- (1 - tau) * target + tau * online (tau = 1: copy)."""
  return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def gradient_norms(disc_params: Any, disc_fn: ScalarFn, points: Array) -> Array:
  """||d logit / d x||_2 at each of points [N, ..] -> [N].

  Differentiates the sum of the logits, which gives per-sample gradients
  because a discriminator treats samples independently (no batch norm).
  """
  grads = jax.grad(lambda x: disc_fn(disc_params, x).sum())(points)
  sq = jnp.square(grads).reshape(grads.shape[0], -1).sum(-1)
  return jnp.sqrt(sq + 1e-12)


def discriminator_loss(disc_params: Any, disc_fn: ScalarFn, expert: Array,
                       policy: Array, rng: Array, *, penalty: str = 'wgan_gp',
                       gp_weight: float = 10.0
                       ) -> tuple[Array, dict[str, Array]]:
  """Binary cross-entropy discriminator with a gradient penalty.

  D(x) = sigmoid(disc_fn(params, x)); expert [N, ..] (demonstration
  embeddings) is labelled 1, policy [M, ..] (the agent's) 0; both
  stop-gradient (the encoder is not trained by the discriminator). Penalty
  on the logit's input gradient:
    'wgan_gp': mean (||grad|| - 1)^2 at x = u * expert + (1 - u) * policy,
       u ~ U[0, 1] per sample (Gulrajani et al. 2017, as in DAC, Kostrikov
       et al. 2019); needs N == M.
    'r1': mean ||grad||^2 at the expert points (Mescheder et al. 2018; the
       1/2 gamma goes into gp_weight).
    'none'.
  loss = BCE + gp_weight * penalty.
  """
  if penalty not in PENALTIES:
    raise ValueError(f'penalty={penalty!r}: expected one of {PENALTIES}')
  expert, policy = _sg(expert), _sg(policy)
  logit_e = disc_fn(disc_params, expert)  # [N]
  logit_p = disc_fn(disc_params, policy)  # [M]
  bce = -(jax.nn.log_sigmoid(logit_e).mean()
          + jax.nn.log_sigmoid(-logit_p).mean())
  if penalty == 'wgan_gp':
    if expert.shape != policy.shape:
      raise ValueError(f'wgan_gp needs expert {expert.shape} and policy '
                       f'{policy.shape} of the same shape')
    u = jax.random.uniform(rng, (expert.shape[0],) + (1,) * (expert.ndim - 1))
    mix = u * expert + (1.0 - u) * policy
    gp = jnp.square(gradient_norms(disc_params, disc_fn, mix) - 1.0).mean()
  elif penalty == 'r1':
    gp = jnp.square(gradient_norms(disc_params, disc_fn, expert)).mean()
  else:
    gp = jnp.zeros((), jnp.float32)
  loss = bce + gp_weight * gp
  return loss, {'disc_bce': bce, 'grad_penalty': gp, 'loss': loss,
                'expert_acc': (logit_e > 0).mean(),
                'policy_acc': (logit_p < 0).mean()}


def adversarial_reward(disc_params: Any, disc_fn: ScalarFn,
                       embed: Array) -> Array:
  """log D(x) - log(1 - D(x)) of embed [N, ..]: [N], the logit; no gradient."""
  logit = disc_fn(_sg(disc_params), embed)
  return _sg(jax.nn.log_sigmoid(logit) - jax.nn.log_sigmoid(-logit))
