"""DeepMind Control Suite environments that produce episode records.

  env = make_env('walker-stand', action_repeat=2, seed=0)
  episode = run_episode(env, lambda step, key: policy(step['obs']), seed=1)

`env.reset()` and `env.step(action)` return one record step, a dict with
`obs` [D] float32 (the dm_control observation dict flattened in sorted-key
order), optional `pixels` [size, size, 3] uint8, `reward` float32 (summed over
the action repeat), `is_first`, `is_last`, `is_terminal` (see episodes.py).
Actions are in [-1, 1] and rescaled to the task's action bounds.

Pixels are rendered by MuJoCo through the OpenGL backend that MUJOCO_GL
selects *before dm_control is imported*: MUJOCO_GL=egl (headless GPU, or
Mesa's software EGL) or MUJOCO_GL=osmesa. Without one, `make_env(...,
pixels=True)` raises a RuntimeError that says so; state-only envs need none.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from dm_control import suite

from jaxreason.imitation import episodes as episodes_lib

Step = dict[str, Any]
ActFn = episodes_lib.ActFn

# Re-exported: episodes.run_episode works with any env of DMCEnv's interface.
run_episode = episodes_lib.run_episode

# DreamerV3's camera choice: quadruped is only visible from camera 2.
_CAMERAS = {'quadruped': 2}


def task_names() -> list[str]:
  """All valid names 'domain-task', e.g. 'walker-stand', 'ball_in_cup-catch'."""
  return [f'{d}-{t}' for d, t in suite.ALL_TASKS]


class DMCEnv:
  """A dm_control suite task with [-1, 1] actions, action repeat, flat obs.

  Attributes:
    name: 'domain-task'.
    obs_dim: D, the length of the flattened state observation.
    action_dim: A.
    obs_keys: the dm_control observation keys, in the flattening order, with
      `obs_slices[key]` the slice of each in `obs`.
    pixels, size: whether steps carry [size, size, 3] uint8 images.
    max_steps: agent steps after which an episode is cut (is_last, not
      is_terminal), or None for the task's own time limit.
  """

  def __init__(self, domain: str, task: str, *, action_repeat: int, seed: int,
               pixels: bool = False, size: int = 64,
               max_steps: int | None = None, camera: int | None = None):
    if action_repeat < 1:
      raise ValueError(f'action_repeat={action_repeat} must be >= 1')
    self.name = f'{domain}-{task}'
    self.action_repeat = action_repeat
    self.pixels = pixels
    self.size = size
    self.max_steps = max_steps
    self.camera = _CAMERAS.get(domain, 0) if camera is None else camera
    self._env = suite.load(domain, task, task_kwargs={'random': seed})
    spec = self._env.action_spec()
    self._low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64)
    self._high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64)
    if np.any(np.abs(np.concatenate([self._low, self._high])) > 1e6):
      raise ValueError(f'{self.name}: action bounds [{spec.minimum}, '
                       f'{spec.maximum}] are effectively unbounded; '
                       '[-1, 1] actions cannot be rescaled to them')
    self.action_dim = int(np.prod(spec.shape))
    obs_spec = self._env.observation_spec()
    self.obs_keys = tuple(sorted(obs_spec))
    self.obs_slices = {}
    start = 0
    for key in self.obs_keys:
      n = int(np.prod(obs_spec[key].shape))
      self.obs_slices[key] = slice(start, start + n)
      start += n
    self.obs_dim = start
    self._t = 0
    self._done = True
    if pixels:
      self._check_rendering()

  @property
  def dm_env(self):
    """The wrapped dm_control environment (for tests and rendering)."""
    return self._env

  def _check_rendering(self) -> None:
    gl = os.environ.get('MUJOCO_GL', '<unset>')
    if gl in ('<unset>', 'glfw') and not os.environ.get('DISPLAY'):
      # glfw without a display can abort the process instead of raising.
      raise RuntimeError(
          f'{self.name}: pixels=True needs a headless OpenGL backend: set '
          f'MUJOCO_GL=egl (headless GPU or Mesa EGL) or MUJOCO_GL=osmesa '
          f'before dm_control is imported (MUJOCO_GL={gl}, no DISPLAY)')
    try:
      self._env.reset()
      self._render()
    except Exception as e:  # RuntimeError, mujoco.FatalError, ImportError.
      raise RuntimeError(
          f'{self.name}: pixels=True but MuJoCo cannot render with '
          f'MUJOCO_GL={gl} ({type(e).__name__}: {e}). Set MUJOCO_GL=egl '
          '(headless GPU or Mesa EGL) or MUJOCO_GL=osmesa before dm_control '
          'is imported.') from e

  def _render(self) -> np.ndarray:
    return self._env.physics.render(height=self.size, width=self.size,
                                    camera_id=self.camera)

  def _flatten(self, observation: dict[str, Any]) -> np.ndarray:
    return np.concatenate([
        np.asarray(observation[k], np.float32).ravel() for k in self.obs_keys])

  def _record(self, time_step, reward: float, is_first: bool) -> Step:
    is_last = time_step.last() or (
        self.max_steps is not None and self._t >= self.max_steps)
    step = {
        'obs': self._flatten(time_step.observation),
        'reward': np.float32(reward),
        'is_first': is_first,
        'is_last': bool(is_last),
        'is_terminal': bool(time_step.last() and time_step.discount == 0),
    }
    if self.pixels:
      step['pixels'] = self._render()
    self._done = bool(is_last)
    return step

  def reset(self, seed: int | None = None) -> Step:
    """Starts an episode; `seed` reseeds the task's initial-state randomness."""
    if seed is not None:
      self._env.task.random.seed(seed)
    self._t = 0
    return self._record(self._env.reset(), 0.0, is_first=True)

  def step(self, action: Any) -> Step:
    """Applies `action` ([A] in [-1, 1]) action_repeat times."""
    if self._done:
      raise RuntimeError(f'{self.name}: step() after the episode ended; '
                         'call reset()')
    action = np.asarray(action, np.float64).reshape(self.action_dim)
    if not np.all(np.isfinite(action)):
      raise ValueError(f'{self.name}: non-finite action {action}')
    action = np.clip(action, -1.0, 1.0)
    scaled = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
    reward = 0.0
    for _ in range(self.action_repeat):
      time_step = self._env.step(scaled)
      reward += time_step.reward or 0.0
      if time_step.last():
        break
    self._t += 1
    return self._record(time_step, reward, is_first=False)

  def sample_action(self, rng: np.random.Generator) -> np.ndarray:
    """Uniform in [-1, 1]^A, float32."""
    return rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)


def make_env(name: str, *, action_repeat: int, seed: int, pixels: bool = False,
             size: int = 64, max_steps: int | None = None) -> DMCEnv:
  """A suite task by 'domain-task' name, e.g. 'walker-stand', 'cheetah-run'.

  Args:
    name: 'domain-task'; domains may contain underscores: 'ball_in_cup-catch'.
    action_repeat: physics control steps per agent step (rewards summed).
    seed: seeds the task (initial states).
    pixels: also render [size, size, 3] uint8 images (needs MUJOCO_GL).
    size: image height and width.
    max_steps: cut episodes after this many agent steps (default: the task's
      time limit, 1000 control steps, i.e. 1000 / action_repeat agent steps).

  Raises:
    ValueError: unknown name (the message lists the valid ones).
  """
  domain, _, task = name.partition('-')
  if (domain, task) not in suite.ALL_TASKS:
    raise ValueError(f'Unknown DMC task {name!r}; valid names: '
                     f'{", ".join(task_names())}')
  return DMCEnv(domain, task, action_repeat=action_repeat, seed=seed,
                pixels=pixels, size=size, max_steps=max_steps)


def random_act_fn(env: DMCEnv, seed: int) -> ActFn:
  """A uniform random policy with the `act_fn(step, key)` signature."""
  rng = np.random.default_rng(seed)
  return lambda step, key: env.sample_action(rng)
