"""Episode records, their files, sequence sampling and the replay buffer."""

import os

import numpy as np
import pytest

from jaxreason.imitation import episodes as E


def make_episode(T, ep_id=0, D=3, A=2, pixels=False):
  """obs[t] = (ep_id, t, ...), action[t] = t, reward[t] = 10 t (0 at 0)."""
  t = np.arange(T + 1, dtype=np.float32)
  ep = {
      'obs': np.stack([np.full(T + 1, ep_id, np.float32), t] +
                      [t * 0.5] * (D - 2), axis=-1),
      'action': np.repeat(t[:, None], A, axis=1),
      'reward': 10.0 * t,
      'is_first': np.arange(T + 1) == 0,
      'is_last': np.arange(T + 1) == T,
      'is_terminal': np.zeros(T + 1, bool),
  }
  if pixels:
    ep['pixels'] = np.random.default_rng(ep_id).integers(
        0, 255, (T + 1, 8, 8, 3), dtype=np.uint8)
  return ep


def assert_episodes_equal(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].dtype == b[k].dtype, k
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_save_load_round_trip_is_atomic(tmp_path):
  ep = make_episode(7, pixels=True)
  path = E.save_episode(str(tmp_path), ep)
  assert os.path.dirname(path) == str(tmp_path) and path.endswith('.npz')
  assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temp left
  (loaded,) = E.load_episodes(str(tmp_path))
  assert_episodes_equal(ep, loaded)
  assert E.episode_length(loaded) == 7
  assert E.episode_return(loaded) == pytest.approx(10.0 * sum(range(8)))


def test_missing_key_names_file_and_key(tmp_path):
  ep = make_episode(4)
  del ep['reward']
  path = E.save_episode(str(tmp_path), ep, name='bad.npz')
  with pytest.raises(ValueError, match=r"bad\.npz.*missing key 'reward'"):
    E.load_episodes(str(tmp_path))
  # Observation-only loading accepts it.
  assert len(E.load_episodes(path, required_keys=E.OBS_ONLY_KEYS)) == 1


def test_corrupt_file_names_file(tmp_path):
  (tmp_path / 'broken.npz').write_bytes(b'not a zip')
  with pytest.raises(ValueError, match='broken.npz'):
    E.load_episodes(str(tmp_path))


def test_sample_sequences_stay_in_episodes_and_are_uniform():
  # Records 3, 5, 10, 2 with L = 3: 1, 3, 8, 0 windows.
  eps = [make_episode(T, ep_id=i) for i, T in enumerate([2, 4, 9, 1])]
  rng = np.random.default_rng(0)
  batch = E.sample_sequences(eps, 6000, 3, rng)
  assert batch['obs'].shape == (6000, 3, 3)
  assert batch['action'].shape == (6000, 3, 2)
  assert batch['is_first'].shape == (6000, 3)
  ids, ts = batch['obs'][..., 0], batch['obs'][..., 1]
  assert np.all(ids == ids[:, :1])                        # one episode each
  assert np.all(np.diff(ts, axis=1) == 1)                 # consecutive
  np.testing.assert_array_equal(batch['is_first'], ts == 0)
  assert not np.any(ids == 3)                             # too short
  # Each of the 12 windows equally likely (1/12 each).
  counts = np.unique(ids[:, 0] * 100 + ts[:, 0], return_counts=True)[1]
  assert len(counts) == 12
  np.testing.assert_allclose(counts / 6000, 1 / 12, atol=0.015)
  with pytest.raises(ValueError, match='No episode has 11 records'):
    E.sample_sequences(eps, 2, 11, rng)


def test_transitions_alignment():
  data = E.transitions([make_episode(3), make_episode(2, ep_id=1)])
  assert data['obs'].shape == (5, 3)
  # obs[t] -> obs[t+1] with action[t+1] = t + 1 and reward[t+1] = 10 (t + 1).
  np.testing.assert_array_equal(data['next_obs'][:, 1], data['obs'][:, 1] + 1)
  np.testing.assert_array_equal(data['action'][:, 0], data['obs'][:, 1] + 1)
  np.testing.assert_array_equal(data['reward'], 10 * (data['obs'][:, 1] + 1))
  np.testing.assert_array_equal(data['obs'][:, 0], data['next_obs'][:, 0])


def test_episode_builder_matches_format():
  builder = E.EpisodeBuilder(action_dim=2, initial_capacity=2)  # grows
  step = lambda t, last: {'obs': np.full(3, t, np.float32),
                          'reward': np.float32(t), 'is_first': t == 0,
                          'is_last': last, 'is_terminal': False}
  builder.add(step(0, False))
  with pytest.raises(ValueError, match='needs the action'):
    builder.add(step(1, False))
  for t in range(1, 6):
    builder.add(step(t, t == 5), action=[t, -t])
  ep = builder.finish()
  np.testing.assert_array_equal(ep['action'][0], [0, 0])
  np.testing.assert_array_equal(ep['action'][:, 0], np.arange(6))
  np.testing.assert_array_equal(ep['is_first'], np.arange(6) == 0)
  assert ep['obs'].dtype == np.float32 and ep['is_last'].dtype == bool
  E.validate_episode(ep)


def test_replay_buffer_fifo_eviction():
  buf = E.ReplayBuffer(capacity=10)
  for i, T in enumerate([4, 4, 4, 3]):
    buf.add(make_episode(T, ep_id=i))
  # 4+4+4 = 12 > 10 evicts episode 0; +3 = 11 > 10 evicts episode 1.
  assert [int(ep['obs'][0, 0]) for ep in buf.episodes] == [2, 3]
  assert buf.num_steps == 7
  big = E.ReplayBuffer(capacity=2)
  big.add(make_episode(5))
  assert len(big) == 1  # the newest episode is kept even if too long


def test_replay_buffer_save_restore(tmp_path):
  buf = E.ReplayBuffer(capacity=10)
  for i in range(2):
    buf.add(make_episode(4, ep_id=i))
  buf.save(str(tmp_path))
  for i in range(2, 4):
    buf.add(make_episode(4, ep_id=i))  # evicts 0 and 1
  buf.save(str(tmp_path))
  (tmp_path / '.tmp-junk.npz').write_bytes(b'half written')
  files = sorted(f for f in os.listdir(tmp_path) if f.endswith('.npz'))
  assert len(files) == 3  # evicted episodes pruned; the stray temp ignored

  restored = E.ReplayBuffer(capacity=10).restore(str(tmp_path))
  assert len(restored) == 2 and restored.num_steps == 8
  for a, b in zip(buf.episodes, restored.episodes):
    assert_episodes_equal(a, b)
  restored.add(make_episode(4, ep_id=4))  # ids continue: no name clash
  restored.save(str(tmp_path))
  again = E.ReplayBuffer(capacity=10).restore(str(tmp_path))
  assert [int(ep['obs'][0, 0]) for ep in again.episodes] == [3, 4]
  with pytest.raises(FileNotFoundError, match='replay.json'):
    E.ReplayBuffer().restore(str(tmp_path / 'nothing'))


def test_add_step_samples_the_open_episode():
  buf = E.ReplayBuffer(capacity=100, action_dim=2)
  ep = make_episode(6, ep_id=0)
  for t in range(4):  # steps 0..3 of an unfinished episode
    step = {k: ep[k][t] for k in ep if k != 'action'}
    assert buf.add_step(step, None if t == 0 else ep['action'][t]) is None
  rng = np.random.default_rng(0)
  batch = buf.sample_transitions(50, rng)  # only open transitions exist
  assert len(buf) == 0 and batch['obs'].shape == (50, 3)
  assert set(batch['obs'][:, 1]) == {0, 1, 2}
  np.testing.assert_array_equal(batch['action'][:, 0], batch['obs'][:, 1] + 1)
  for t in range(4, 7):
    step = {k: ep[k][t] for k in ep if k != 'action'}
    done = buf.add_step(step, ep['action'][t])
  assert_episodes_equal(done, ep)
  assert len(buf) == 1 and buf.num_steps == 6
  buf.add_step({k: v[0] for k, v in make_episode(3, ep_id=1).items()
                if k != 'action'})
  buf.add_step({k: v[1] for k, v in make_episode(3, ep_id=1).items()
                if k != 'action'}, [1, 1])
  batch = buf.sample_transitions(400, rng)
  np.testing.assert_array_equal(batch['next_obs'][:, 1], batch['obs'][:, 1] + 1)
  np.testing.assert_array_equal(batch['next_obs'][:, 0], batch['obs'][:, 0])
  assert set(batch['obs'][:, 0]) == {0, 1}
