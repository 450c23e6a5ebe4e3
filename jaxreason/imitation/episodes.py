"""Episode records: the format, its files, sequence sampling, a replay buffer.

An episode with T agent steps is a dict of NumPy arrays, all of length T + 1;
index t is the moment obs[t] is observed (the DreamerV3 convention):

  obs          [T+1, D]        float32  state observation (envs.py flattens the
                                        dm_control dict in sorted-key order)
  pixels       [T+1, H, W, 3]  uint8    optional image observation (64 x 64)
  action       [T+1, A]        float32  the PREVIOUS action, in [-1, 1]:
                                        action[t] was done just before obs[t]
                                        was observed; action[0] = 0
  reward       [T+1]           float32  received on arriving at obs[t];
                                        reward[0] = 0
  is_first     [T+1]           bool     True only at t = 0
  is_last      [T+1]           bool     True only at t = T (any episode end,
                                        time limit included)
  is_terminal  [T+1]           bool     True at t = T only if the episode
                                        ended in a terminal state (do not
                                        bootstrap); never for DMC time limits

So the transitions of an episode are, for t = 0 .. T-1,
  (obs[t], action[t+1], reward[t+1], obs[t+1], is_terminal[t+1]).
Observation-only demonstrations simply lack `action` (and maybe `reward`):
load them with `required_keys=OBS_ONLY_KEYS`.

Each episode is one `.npz` file, written to a temporary file and renamed, so a
run killed mid-write never leaves a truncated episode under its final name.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
import time
import uuid
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import numpy as np

Episode = dict[str, np.ndarray]
# act_fn(step, key) -> action [A]: step is the env's record dict for the
# current observation, key a jax PRNG key.
ActFn = Callable[[dict[str, Any], jax.Array], Any]

REQUIRED_KEYS = ('obs', 'action', 'reward', 'is_first', 'is_last',
                 'is_terminal')
OBS_ONLY_KEYS = ('obs', 'is_first', 'is_last', 'is_terminal')
_FLAG_KEYS = ('is_first', 'is_last', 'is_terminal')
_MANIFEST = 'replay.json'


def episode_length(episode: Mapping[str, np.ndarray]) -> int:
  """T, the number of agent steps (records - 1)."""
  return len(episode['is_first']) - 1


def episode_return(episode: Mapping[str, np.ndarray]) -> float:
  """Sum of rewards (reward[0] is 0 by construction)."""
  return float(np.sum(episode['reward'], dtype=np.float64))


def validate_episode(episode: Mapping[str, np.ndarray],
                     required_keys: Sequence[str] = REQUIRED_KEYS,
                     name: str = 'episode') -> None:
  """Raises ValueError naming `name` and the bad key if the record is invalid.

  Checks: required keys present, every array the same length T + 1 >= 1,
  is_first[0] set.
  """
  for key in required_keys:
    if key not in episode:
      raise ValueError(f'{name}: missing key {key!r} (has {sorted(episode)})')
  lengths = {k: len(np.asarray(v)) for k, v in episode.items()}
  if not lengths or len(set(lengths.values())) != 1:
    raise ValueError(f'{name}: arrays must share one length T+1, got {lengths}')
  if min(lengths.values()) < 1:
    raise ValueError(f'{name}: empty episode')
  if 'is_first' in episode and not episode['is_first'][0]:
    raise ValueError(f'{name}: is_first[0] must be True')


def save_episode(directory: str, episode: Mapping[str, np.ndarray], *,
                 name: str | None = None, compress: bool = True) -> str:
  """Writes `episode` to directory/name (default: time-uuid-lenT.npz).

  Atomic: written to a hidden temporary file in `directory`, then renamed.
  Returns the path.
  """
  validate_episode(episode, required_keys=(), name='save_episode')
  os.makedirs(directory, exist_ok=True)
  if name is None:
    name = (f'{time.strftime("%Y%m%dT%H%M%S")}-{uuid.uuid4().hex[:8]}-'
            f'len{episode_length(episode)}.npz')
  path = os.path.join(directory, name)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.npz')
  try:
    with os.fdopen(fd, 'wb') as f:
      (np.savez_compressed if compress else np.savez)(
          f, **{k: np.asarray(v) for k, v in episode.items()})
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path


def load_episode(path: str,
                 required_keys: Sequence[str] = REQUIRED_KEYS) -> Episode:
  """One .npz episode; errors name the file (and the missing key)."""
  try:
    with np.load(path, allow_pickle=False) as data:
      episode = {k: data[k] for k in data.files}
  except Exception as e:  # OSError, zipfile.BadZipFile, EOFError ...
    raise ValueError(f'{path}: cannot read episode file: {e}') from e
  validate_episode(episode, required_keys, name=path)
  return episode


def _episode_files(source: str | os.PathLike | Iterable[str]) -> list[str]:
  if isinstance(source, (str, os.PathLike)):
    source = os.fspath(source)
    if os.path.isdir(source):
      return sorted(os.path.join(source, f) for f in os.listdir(source)
                    if f.endswith('.npz') and not f.startswith('.'))
    if not os.path.exists(source):
      raise FileNotFoundError(f'No episode directory or file at {source}')
    return [source]
  return [os.fspath(f) for f in source]


def load_episodes(source: str | os.PathLike | Iterable[str],
                  required_keys: Sequence[str] = REQUIRED_KEYS
                  ) -> list[Episode]:
  """Episodes from a directory (its *.npz, sorted by name), a file, or files.

  Raises ValueError naming the file and the key if one lacks a required key.
  """
  return [load_episode(f, required_keys) for f in _episode_files(source)]


def sample_sequences(episodes: Sequence[Mapping[str, np.ndarray]],
                     batch_size: int, length: int, rng: np.random.Generator,
                     keys: Sequence[str] | None = None) -> Episode:
  """A batch of windows, dict of [B, L, ...], uniform over all valid windows.

  A window is `length` consecutive records of one episode (never across two);
  episode i of T_i + 1 records has max(0, T_i + 2 - L) of them. Windows may
  start mid-episode, where is_first[:, 0] is False. `keys` defaults to those
  of episodes[0].
  """
  if not episodes:
    raise ValueError('sample_sequences: no episodes')
  keys = tuple(episodes[0]) if keys is None else tuple(keys)
  sizes = np.array([len(ep['is_first']) for ep in episodes])
  counts = np.maximum(sizes - length + 1, 0)
  total = int(counts.sum())
  if total == 0:
    raise ValueError(f'No episode has {length} records for a window '
                     f'(the longest has {sizes.max()})')
  ends = np.cumsum(counts)
  flat = rng.integers(0, total, size=batch_size)
  which = np.searchsorted(ends, flat, side='right')  # [B]
  starts = flat - (ends[which] - counts[which])     # [B]
  batch = {}
  for key in keys:
    rows = []
    for i, s in zip(which, starts):
      if key not in episodes[i]:
        raise ValueError(f'episode {i} lacks key {key!r} '
                         f'(has {sorted(episodes[i])})')
      rows.append(episodes[i][key][s:s + length])
    batch[key] = np.stack(rows)
  return batch


def transitions(episodes: Sequence[Mapping[str, np.ndarray]],
                keys: Sequence[str] = ('obs', 'action', 'reward',
                                       'is_terminal')) -> Episode:
  """All transitions, flattened: dict of [N, ...] with N = sum of T.

  obs = obs[t], next_obs = obs[t+1]; every other key k is k[t+1] (the
  action taken at t, the reward and terminal flag on arriving at t+1).
  """
  out = collections.defaultdict(list)
  for ep in episodes:
    for key in keys:
      if key == 'obs':
        out['obs'].append(ep['obs'][:-1])
        out['next_obs'].append(ep['obs'][1:])
      else:
        out[key].append(ep[key][1:])
  return {k: np.concatenate(v) for k, v in out.items()}


class EpisodeBuilder:
  """Accumulates env steps into an episode record, in growing arrays.

    builder = EpisodeBuilder(action_dim)
    builder.add(env.reset())                  # action defaults to zeros
    builder.add(env.step(a), action=a)        # a: the action just executed
    partial = builder.view()                  # no copy: [n, ...] so far
    episode = builder.finish()
  """

  def __init__(self, action_dim: int, initial_capacity: int = 128):
    self.action_dim = action_dim
    self._initial_capacity = initial_capacity
    self._arrays: dict[str, np.ndarray] = {}
    self._n = 0

  def __len__(self) -> int:
    return self._n

  def add(self, step: Mapping[str, Any], action: Any = None) -> None:
    """Adds one observation record; `action` is the one that led to it."""
    if not self._n:
      if not step['is_first']:
        raise ValueError('The first step of an episode must have is_first')
      if action is not None:
        raise ValueError('No action precedes the first step of an episode')
      action = np.zeros(self.action_dim, np.float32)
      self._arrays = {}
      for key, value in dict(step, action=action).items():
        value = np.asarray(value)
        dtype = (np.float32 if key in ('obs', 'action', 'reward') else
                 bool if key in _FLAG_KEYS else value.dtype)
        self._arrays[key] = np.zeros(
            (self._initial_capacity,) + value.shape, dtype)
    elif action is None:
      raise ValueError('Every step after the first needs the action taken')
    elif step.keys() | {'action'} != self._arrays.keys():
      raise ValueError(f'Step keys {sorted(step)} differ from the first '
                       f'step\'s {sorted(self._arrays)}')
    if self._n == len(self._arrays['action']):
      self._arrays = {k: np.concatenate([v, np.zeros_like(v)])
                      for k, v in self._arrays.items()}
    for key, value in step.items():
      self._arrays[key][self._n] = value
    self._arrays['action'][self._n] = np.reshape(action, self.action_dim)
    self._n += 1

  def view(self) -> Episode:
    """The records so far, [n, ...] views (valid until the next add)."""
    return {k: v[:self._n] for k, v in self._arrays.items()}

  def finish(self) -> Episode:
    """The episode record (see the module docstring); resets the builder."""
    if not self._n:
      raise ValueError('EpisodeBuilder.finish: no steps')
    episode = {k: v[:self._n].copy() for k, v in self._arrays.items()}
    self._arrays, self._n = {}, 0
    return episode


def run_episode(env: Any, act_fn: ActFn, seed: int) -> Episode:
  """Runs one episode and returns its record.

  Args:
    env: has reset(seed) -> step, step(action) -> step and action_dim (e.g.
      envs.DMCEnv); each step is a dict of obs (pixels), reward and flags.
    act_fn: `act_fn(step, key) -> action [A]` in [-1, 1], called on each step
      dict (reset's first) with key = fold_in(PRNGKey(seed), t), t = 0, 1, ...
      It may keep its own state (e.g. a recurrent world-model belief), reset
      when step['is_first'].
    seed: reseeds the env's initial state (env.reset(seed)) and the keys.

  Returns:
    The episode; action[t + 1] is what act_fn returned at step t, clipped to
    [-1, 1] (what the env executed).
  """
  builder = EpisodeBuilder(env.action_dim)
  key = jax.random.PRNGKey(seed)
  step = env.reset(seed=seed)
  builder.add(step)
  t = 0
  while not step['is_last']:
    action = np.clip(np.asarray(act_fn(step, jax.random.fold_in(key, t)),
                                np.float32), -1.0, 1.0)
    step = env.step(action)
    builder.add(step, action=action)
    t += 1
  return builder.finish()


def _write_json_atomic(path: str, obj: Any) -> None:
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.tmp-',
                             suffix='.json')
  with os.fdopen(fd, 'w') as f:
    json.dump(obj, f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


class ReplayBuffer:
  """Whole episodes, FIFO-evicted past `capacity` agent steps.

  Episodes come in whole (`add`) or step by step (`add_step`, which needs
  `action_dim`); the steps of the episode still open are sampled too, but
  neither count towards the capacity nor get saved. The newest finished
  episode is always kept, even if alone it exceeds the capacity.

  `save(dir)` writes new episodes (one .npz each) and then a manifest
  atomically; `restore(dir)` reloads exactly the manifest's episodes, so a run
  killed at any point resumes with the buffer of its last completed save.
  """

  def __init__(self, capacity: int | None = None,
               action_dim: int | None = None):
    if capacity is not None and capacity < 1:
      raise ValueError(f'capacity={capacity} must be positive or None')
    self.capacity = capacity
    self.action_dim = action_dim
    self._items: collections.deque[tuple[int, Episode]] = collections.deque()
    self._next_id = 0
    self._num_steps = 0
    self._flat: Episode | None = None  # transition cache, rebuilt lazily
    self._open: EpisodeBuilder | None = None

  def __len__(self) -> int:
    """The number of finished episodes held."""
    return len(self._items)

  @property
  def num_steps(self) -> int:
    """Agent steps (sum of T) of the finished episodes held."""
    return self._num_steps

  @property
  def episodes(self) -> list[Episode]:
    """The finished episodes, oldest first."""
    return [ep for _, ep in self._items]

  def add(self, episode: Episode) -> None:
    """Adds a finished episode (evicting the oldest past the capacity)."""
    validate_episode(episode, required_keys=('is_first',), name='add')
    self._items.append((self._next_id, episode))
    self._next_id += 1
    self._num_steps += episode_length(episode)
    self._evict()

  def add_step(self, step: Mapping[str, Any],
               action: Any = None) -> Episode | None:
    """Streams one env step (EpisodeBuilder.add); returns the episode it ends.

    A step with is_first starts a new open episode (dropping an unfinished
    one); a step with is_last finishes it, adds it and returns it.
    """
    if self.action_dim is None:
      raise ValueError('ReplayBuffer.add_step needs ReplayBuffer(action_dim=)')
    if step['is_first'] or self._open is None:
      self._open = EpisodeBuilder(self.action_dim)
    self._open.add(step, action)
    if not step['is_last']:
      return None
    episode = self._open.finish()
    self._open = None
    self.add(episode)
    return episode

  def _evict(self) -> None:
    while (self.capacity is not None and len(self._items) > 1 and
           self._num_steps > self.capacity):
      _, old = self._items.popleft()
      self._num_steps -= episode_length(old)
    self._flat = None

  def _open_view(self) -> Episode | None:
    return self._open.view() if self._open is not None else None

  def sample(self, batch_size: int, length: int,
             rng: np.random.Generator) -> Episode:
    """Windows of `length` records: dict of [B, L, ...] (sample_sequences)."""
    episodes = self.episodes
    open_view = self._open_view()
    if open_view is not None and len(open_view['is_first']) >= length:
      episodes.append(open_view)
    return sample_sequences(episodes, batch_size, length, rng)

  def sample_transitions(self, batch_size: int,
                         rng: np.random.Generator) -> Episode:
    """Uniform transitions: obs, next_obs [B, D]; action [B, A]; reward,
    is_terminal [B] (see `transitions`), the open episode's included."""
    if self._flat is None and self._items:
      self._flat = transitions(self.episodes)
    num_done = len(self._flat['reward']) if self._flat is not None else 0
    open_view = self._open_view()
    num_open = len(open_view['obs']) - 1 if open_view is not None else 0
    if num_done + num_open == 0:
      raise ValueError('sample_transitions: the buffer has no transitions')
    idx = rng.integers(0, num_done + num_open, size=batch_size)
    if not num_open:
      return {k: v[idx] for k, v in self._flat.items()}
    j = idx[idx >= num_done] - num_done  # transitions j -> j + 1
    fresh = {'obs': open_view['obs'][j], 'next_obs': open_view['obs'][j + 1]}
    for k in ('action', 'reward', 'is_terminal'):
      fresh[k] = open_view[k][j + 1]
    if not num_done:
      return fresh
    old = {k: v[idx[idx < num_done]] for k, v in self._flat.items()}
    return {k: np.concatenate([old[k], fresh[k]]) for k in fresh}

  @staticmethod
  def _name(episode_id: int, episode: Episode) -> str:
    return f'ep{episode_id:08d}-len{episode_length(episode)}.npz'

  @staticmethod
  def _manifest(directory: str, step: int | None) -> str:
    name = _MANIFEST if step is None else f'replay-{step:08d}.json'
    return os.path.join(directory, name)

  @staticmethod
  def has_checkpoint(directory: str, step: int | None = None) -> bool:
    return os.path.exists(ReplayBuffer._manifest(directory, step))

  def save(self, directory: str, step: int | None = None) -> None:
    """Writes episodes not yet in `directory`, then the manifest atomically.

    With `step`, the manifest is that step's (a `train.checkpoint.HostState`
    beside the checkpoints; `prune` removes old ones); without, the one
    manifest of `directory`, and episodes it no longer lists are deleted.
    """
    os.makedirs(directory, exist_ok=True)
    names = []
    for episode_id, ep in self._items:
      name = self._name(episode_id, ep)
      if not os.path.exists(os.path.join(directory, name)):
        save_episode(directory, ep, name=name)
      names.append(name)
    _write_json_atomic(self._manifest(directory, step),
                       {'version': 1, 'next_id': self._next_id,
                        'files': names})
    if step is None:
      self._delete_unlisted(directory, set(names))

  def prune(self, directory: str, keep_steps: Sequence[int]) -> None:
    """Deletes step manifests not in keep_steps and episodes none lists."""
    if not os.path.isdir(directory):
      return
    keep = {os.path.basename(self._manifest(directory, s)) for s in keep_steps}
    listed = set()
    for f in os.listdir(directory):
      if not (f.startswith('replay') and f.endswith('.json')):
        continue
      if f != _MANIFEST and f not in keep:
        os.unlink(os.path.join(directory, f))
        continue
      with open(os.path.join(directory, f)) as fp:
        listed.update(json.load(fp)['files'])
    self._delete_unlisted(directory, listed)

  @staticmethod
  def _saved_steps(directory: str) -> list[int]:
    return sorted(int(f[len('replay-'):-len('.json')])
                  for f in os.listdir(directory)
                  if f.startswith('replay-') and f.endswith('.json'))

  @staticmethod
  def _delete_unlisted(directory: str, keep: set[str]) -> None:
    for f in os.listdir(directory):
      if f.startswith('ep') and f.endswith('.npz') and f not in keep:
        os.unlink(os.path.join(directory, f))

  def restore(self, directory: str, step: int | None = None
              ) -> 'ReplayBuffer':
    """Replaces the contents with a save in `directory` (of `step`); self."""
    path = self._manifest(directory, step)
    if not os.path.exists(path):
      raise FileNotFoundError(f'No replay buffer saved in {directory} '
                              f'({os.path.basename(path)} missing)')
    with open(path) as f:
      manifest = json.load(f)
    if step is not None:  # Saves of later steps (their checkpoints never
      # completed) go, so that their episodes are written again.
      later = [s for s in self._saved_steps(directory) if s > step]
      self.prune(directory, [s for s in self._saved_steps(directory)
                             if s not in later])
    self._items.clear()
    self._num_steps = 0
    self._open = None
    for name in manifest['files']:
      episode_id = int(name[2:10])
      ep = load_episode(os.path.join(directory, name), required_keys=())
      self._items.append((episode_id, ep))
      self._num_steps += episode_length(ep)
    self._next_id = manifest['next_id']
    self._evict()  # This buffer's capacity may differ from the saved one's.
    return self
