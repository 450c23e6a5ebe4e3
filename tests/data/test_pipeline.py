"""SFT pipeline: tokenisation masks, packing, determinism, iterator state."""

import numpy as np
import pytest

from jaxreason.data import pipeline, sources, synthetic
from jaxreason.data.tokenizer import CharTokenizer

TOK = CharTokenizer()
RECORDS = [{'prompt': f'q{i}?', 'completion': 'a' * (i % 5 + 1)}
           for i in range(40)]


def _ds(seed=0, pack=True):
  return pipeline.sft_dataset(RECORDS, TOK, seq_len=24, batch_size=4,
                              seed=seed, pack=pack)


def test_loss_mask_covers_completion_and_eos_only():
  ex = pipeline.tokenize_pair('ab', 'cd', TOK, max_len=16)
  assert TOK.decode(ex['tokens'].tolist()) == '<bos>abcd<eos>'
  np.testing.assert_array_equal(ex['loss_mask'], [0, 0, 0, 1, 1, 1])


def test_packing_segments_positions_and_masks():
  batch = next(iter(_ds()))
  assert set(batch) == set(pipeline.BATCH_KEYS)
  for key in pipeline.BATCH_KEYS:
    assert batch[key].shape == (4, 24) and batch[key].dtype == np.int32
  seg, pos = batch['segment_ids'], batch['positions']
  assert seg.max() >= 2, 'expected several examples packed per row'
  for row in range(4):
    for s in set(seg[row].tolist()) - {0}:
      idx = np.nonzero(seg[row] == s)[0]
      assert (np.diff(idx) == 1).all()  # Contiguous.
      np.testing.assert_array_equal(pos[row, idx], np.arange(len(idx)))
      toks = batch['tokens'][row, idx]
      assert toks[0] == TOK.bos_id and toks[-1] == TOK.eos_id
    assert (batch['tokens'][row][seg[row] == 0] == 0).all()
    assert (batch['loss_mask'][row][seg[row] == 0] == 0).all()


def test_deterministic_and_seed_dependent():
  a = [next(iter(_ds(0)))['tokens'] for _ in range(2)]
  np.testing.assert_array_equal(a[0], a[1])
  b = next(iter(_ds(1)))['tokens']
  assert not np.array_equal(a[0], b)


def test_iterator_state_restores_exactly():
  it = iter(_ds())
  for _ in range(3):
    next(it)
  state = it.get_state()
  expected = [next(it)['tokens'] for _ in range(4)]
  it2 = iter(_ds())
  it2.set_state(state)
  for e in expected:
    np.testing.assert_array_equal(next(it2)['tokens'], e)


def test_unpacked_rows_hold_one_example():
  batch = next(iter(_ds(pack=False)))
  assert set(np.unique(batch['segment_ids'])) <= {0, 1}


def test_missing_field_and_bad_jsonl_are_named(tmp_path):
  with pytest.raises(KeyError, match='completion'):
    pipeline.sft_dataset([{'prompt': 'x'}], TOK, seq_len=8, batch_size=1,
                         seed=0)
  path = tmp_path / 'bad.jsonl'
  path.write_text('{"prompt": "a", "completion": "b"}\n{oops\n')
  with pytest.raises(ValueError, match='bad.jsonl:2'):
    sources.read_jsonl(str(path))


def test_synthetic_splits_are_disjoint():
  train, held = sources.synthetic_splits(dict(num_steps=2), 300, 50, seed=0)
  assert len(held) == 50 and len({p.question for p in held}) == 50
  assert not {p.question for p in train} & {p.question for p in held}


def test_held_out_split_is_shared_by_every_draw():
  """Held-out problems are never training problems of any recipe's draw.

  The quickstart SFT (50k problems), DPO (2,048) and other seeds all
  exclude the same held-out questions, and evaluation sets do not depend on
  how many training problems a recipe draws.
  """
  task = dict(num_steps=2)
  _, held = sources.synthetic_splits(task, 10, 64, seed=0)
  held_q = {p.question for p in held}
  assert all(sources.is_held_out(q) for q in held_q)
  for num_train, seed in ((2000, 0), (50, 0), (2000, 1)):
    train, held2 = sources.synthetic_splits(task, num_train, 64, seed=seed)
    assert not {p.question for p in train} & held_q
    assert not any(sources.is_held_out(p.question) for p in train)
    if seed == 0:
      assert [p.question for p in held2] == [p.question for p in held]
  # About 1 in HELD_OUT_BUCKETS raw questions is held out (4,000 draws:
  # binomial mean 0.0625, standard deviation 0.0038).
  raw = synthetic.generate_dataset(7, 4000, sources.arithmetic_config(task))
  rate = np.mean([sources.is_held_out(p.question) for p in raw])
  assert 0.045 < rate < 0.08, rate


