"""Grain input pipelines: tokenise (prompt, completion) pairs, pack, batch.

Every batch is a dict of int32 [B, T] arrays:
  tokens       input ids
  positions    position within its own example (restarts at 0 per example)
  segment_ids  1, 2, ... per packed example; 0 = padding
  loss_mask    1 on completion tokens (the ones the loss is computed on)

Shuffling is deterministic from the seed and reshuffles every epoch; the
iterator's state (a few integers) is saved with each checkpoint. On multi-host
runs each process reads a disjoint slice of the examples.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import grain
import grain.experimental
import jax
import numpy as np

from jaxreason.data.tokenizer import Tokenizer

BATCH_KEYS = ('tokens', 'positions', 'segment_ids', 'loss_mask')


def split_masked(text: str, blocks: Sequence[tuple[str, str]]
                 ) -> list[tuple[str, bool]]:
  """Cuts text into (piece, masked) runs; a block runs from open to close.

  `blocks` holds (open, close) markers, e.g. a tool's output block
  ('\\n```output\\n', '\\n```\\n'): the text from an open marker through
  the next close marker (both included; an unclosed block runs to the end)
  is masked. Pieces are in order and join back to `text`.
  """
  runs, i = [], 0
  while blocks:
    hits = [(text.find(o, i), o, c) for o, c in blocks if text.find(o, i) >= 0]
    if not hits:
      break
    start, o, c = min(hits)
    end = text.find(c, start + len(o))
    end = len(text) if end < 0 else end + len(c)
    if start > i:
      runs.append((text[i:start], False))
    runs.append((text[start:end], True))
    i = end
  if i < len(text) or not runs:
    runs.append((text[i:], False))
  return runs


def tokenize_pair(prompt: str, completion: str, tokenizer: Tokenizer, *,
                  max_len: int, add_bos: bool = True, add_eos: bool = True,
                  masked_blocks: Sequence[tuple[str, str]] = ()
                  ) -> dict[str, np.ndarray]:
  """Tokens of prompt + completion with a loss mask on the completion.

  The completion ends with EOS when `add_eos`. Examples longer than `max_len`
  are truncated from the right (the loss mask follows). With
  `masked_blocks`, the completion's blocks (`split_masked`: e.g. a tool's
  output, which the model reads but never writes) are encoded piece by piece
  and left out of the loss.
  """
  p = tokenizer.encode(prompt, add_bos=add_bos and tokenizer.bos_id is not None)
  c, c_mask = [], []
  for piece, masked in split_masked(completion, masked_blocks):
    ids = tokenizer.encode(piece)
    c += ids
    c_mask += [0 if masked else 1] * len(ids)
  if add_eos and tokenizer.eos_id is not None:
    c.append(tokenizer.eos_id)
    c_mask.append(1)
  tokens = np.asarray(p + c, np.int32)[:max_len]
  mask = np.asarray([0] * len(p) + c_mask, np.int32)[:max_len]
  return {'tokens': tokens, 'loss_mask': mask}


def _pad_one(ex: Mapping[str, np.ndarray], seq_len: int) -> dict[str, np.ndarray]:
  n = len(ex['tokens'])
  pad = seq_len - n
  return {
      'tokens': np.pad(ex['tokens'], (0, pad)),
      'loss_mask': np.pad(ex['loss_mask'], (0, pad)),
      'positions': np.pad(np.arange(n, dtype=np.int32), (0, pad)),
      'segment_ids': np.pad(np.ones(n, np.int32), (0, pad)),
  }


def _rename_packed(ex: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {
      'tokens': ex['tokens'].astype(np.int32),
      'loss_mask': ex['loss_mask'].astype(np.int32),
      'positions': ex['tokens_positions'].astype(np.int32),
      'segment_ids': ex['tokens_segment_ids'].astype(np.int32),
  }


def sft_dataset(records: Sequence[Mapping[str, str]], tokenizer: Tokenizer, *,
                seq_len: int, batch_size: int, seed: int,
                num_epochs: int | None = None, pack: bool = True,
                num_packing_bins: int | None = None, add_bos: bool = True,
                prompt_key: str = 'prompt',
                completion_key: str = 'completion',
                masked_blocks: Sequence[tuple[str, str]] = ()
                ) -> grain.IterDataset:
  """A grain IterDataset of packed SFT batches for this process.

  Args:
    records: dicts with prompt and completion strings.
    tokenizer: any jaxreason Tokenizer.
    seq_len: tokens per row.
    batch_size: rows per batch *on this process* (global batch / processes).
    seed: shuffling seed (also reshuffles each epoch).
    num_epochs: None repeats forever.
    pack: first-fit packing of several examples per row (segment ids keep
      them apart); otherwise one example per row, right-padded.
    num_packing_bins: packing look-ahead; defaults to batch_size.
    masked_blocks: (open, close) markers of completion spans left out of the
      loss (`tokenize_pair`), e.g. tool output blocks.
  """
  masked_blocks = tuple((str(o), str(c)) for o, c in masked_blocks)
  for o, c in masked_blocks:
    if not o or not c:
      raise ValueError(f'masked_blocks: empty marker in {(o, c)!r}')
  for i, r in enumerate(records[:1]):
    for key in (prompt_key, completion_key):
      if key not in r:
        raise KeyError(f'record {i} has no field {key!r} (fields: {sorted(r)})')
  ds = grain.MapDataset.source(list(records))
  if jax.process_count() > 1:
    ds = ds[jax.process_index()::jax.process_count()]
  ds = ds.shuffle(seed=seed).repeat(num_epochs)
  ds = ds.map(lambda r: tokenize_pair(r[prompt_key], r[completion_key],
                                      tokenizer, max_len=seq_len,
                                      add_bos=add_bos,
                                      masked_blocks=masked_blocks))
  it = ds.to_iter_dataset()
  if pack:
    it = grain.experimental.FirstFitPackIterDataset(
        it, length_struct={'tokens': seq_len, 'loss_mask': seq_len},
        num_packing_bins=num_packing_bins or batch_size, seed=seed,
        shuffle_bins=False)
    it = it.map(_rename_packed)
  else:
    it = it.map(lambda ex: _pad_one(ex, seq_len))
  return it.batch(batch_size, drop_remainder=True)


def global_batch(local: Mapping[str, np.ndarray], sharding: Any) -> dict:
  """Assembles per-process numpy batches into one global sharded jax.Array."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}


def packing_efficiency(batch: Mapping[str, np.ndarray]) -> float:
  """Share of non-padding tokens in a batch."""
  return float((np.asarray(batch['segment_ids']) > 0).mean())


def epoch_indices(step: int, per_step: int, n: int, seed: int) -> np.ndarray:
  """Example indices of a step: consecutive slices of per-epoch permutations.

  Step s takes items [s * per_step, (s + 1) * per_step) of the endless
  sequence perm_0 + perm_1 + ..., perm_e a permutation of range(n) seeded by
  (seed, e): every item once per epoch, a batch may straddle two epochs, and
  a resumed run gets the same indices for the same step (no iterator state).
  """
  start = step * per_step
  out: list[int] = []
  while len(out) < per_step:
    epoch, offset = divmod(start + len(out), n)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    out.extend(perm[offset:offset + per_step - len(out)].tolist())
  return np.asarray(out)
