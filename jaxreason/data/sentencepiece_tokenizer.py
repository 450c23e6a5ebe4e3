"""`SentencePieceTokenizer`: a SentencePiece model, trainable in memory.

Import it from `jaxreason.data.tokenizer`, which re-exports it.
"""

from collections.abc import Iterable, Sequence
import io
import os
from typing import Any

from absl import logging
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

from jaxreason.data.tokenizer import CHAT_TOKENS
from jaxreason.data.tokenizer import SENTENCEPIECE_FILE
from jaxreason.data.tokenizer import Tokenizer


class SentencePieceTokenizer(Tokenizer):
  """A SentencePiece model.

  Special tokens are its control pieces (pad, bos, eos) and user-defined
  symbols (the chat tokens); the latter always encode as single ids.
  """

  def __init__(self, model_proto: bytes, *, source: str = '<in memory>'):
    """Wraps a serialized ModelProto; `source` names it in errors."""
    self._model_proto = model_proto
    try:
      self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
      proto = sentencepiece_model_pb2.ModelProto.FromString(model_proto)
    except Exception as e:
      raise ValueError(f'{source}: not a SentencePiece model ({e})') from e
    piece_type = sentencepiece_model_pb2.ModelProto.SentencePiece.Type
    special = {}
    self._control_ids = set()
    for i, piece in enumerate(proto.pieces):
      if piece.type in (piece_type.CONTROL, piece_type.USER_DEFINED):
        special[piece.piece] = i
      if piece.type == piece_type.CONTROL:
        self._control_ids.add(i)
    # SentencePiece uses -1 for "no such piece".
    bos_id = self._sp.bos_id() if self._sp.bos_id() >= 0 else None
    eos_id = self._sp.eos_id() if self._sp.eos_id() >= 0 else None
    pad_id = self._sp.pad_id() if self._sp.pad_id() >= 0 else eos_id
    if pad_id is None:
      raise ValueError(
          f'{source}: the model has neither a pad nor an eos piece'
      )
    super().__init__(
        bos_id=bos_id, eos_id=eos_id, pad_id=pad_id, special_tokens=special
    )

  @classmethod
  def train(
      cls,
      text_iterator: Iterable[str],
      vocab_size: int,
      *,
      model_type: str = 'bpe',
      user_defined_symbols: Sequence[str] = CHAT_TOKENS,
      split_digits: bool = True,
      byte_fallback: bool = True,
      character_coverage: float = 1.0,
      add_dummy_prefix: bool = False,
      **trainer_kwargs: Any,
  ) -> 'SentencePieceTokenizer':
    """Trains a model in memory on the sentences of `text_iterator`.

    Ids: pad=0, unk=1, bos=2, eos=3, then `user_defined_symbols`. Text is not
    normalized and whitespace is kept, so `decode(encode(text)) == text` for
    any text (unseen characters go through the 256 byte pieces when
    `byte_fallback`, which therefore needs `vocab_size` above 256 + the
    characters seen). Without a dummy prefix, encodings of pieces of text
    concatenate like the text does.

    Args:
      text_iterator: training sentences (each shorter than 4192 bytes, the
        default `max_sentence_length`).
      vocab_size: the number of pieces, special ones included.
      model_type: 'bpe' or 'unigram'.
      user_defined_symbols: pieces always encoded as one id.
      split_digits: split numbers into one piece per digit.
      byte_fallback: encode unseen characters as UTF-8 byte pieces, not unk.
      character_coverage: fraction of characters covered by character pieces.
      add_dummy_prefix: prepend a space to the text, as Llama's model does.
      **trainer_kwargs: further `SentencePieceTrainer.train` options, which
        override the ones above (e.g. hard_vocab_limit=False).

    Returns:
      The trained tokenizer.
    """
    if model_type not in ('bpe', 'unigram'):
      raise ValueError(
          f"model_type must be 'bpe' or 'unigram', got {model_type!r}"
      )
    options = dict(
        model_type=model_type,
        vocab_size=vocab_size,
        user_defined_symbols=list(user_defined_symbols),
        split_digits=split_digits,
        byte_fallback=byte_fallback,
        character_coverage=character_coverage,
        add_dummy_prefix=add_dummy_prefix,
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        normalization_rule_name='identity',
        remove_extra_whitespaces=False,
        minloglevel=2,
    )
    options.update(trainer_kwargs)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text_iterator), model_writer=model, **options
    )
    tokenizer = cls(model.getvalue())
    logging.info(
        'Trained a %s SentencePiece model of %d pieces',
        model_type,
        tokenizer.vocab_size,
    )
    return tokenizer

  @classmethod
  def from_file(cls, path: str) -> 'SentencePieceTokenizer':
    """Reads a SentencePiece `.model` file."""
    with open(path, 'rb') as f:
      return cls(f.read(), source=path)

  def _encode(self, text: str) -> list[int]:
    return list(self._sp.encode(text))

  def _decode(self, ids: list[int]) -> str:
    # SentencePiece decodes control pieces (pad, bos, eos) to '': write them
    # out here, and decode the runs between them with SentencePiece.
    parts, run = [], []
    for i in ids:
      if i in self._control_ids:
        parts += [self._sp.decode(run), self._sp.id_to_piece(i)]
        run = []
      else:
        run.append(i)
    parts.append(self._sp.decode(run))
    return ''.join(parts)

  def _control_ids_for_bytes(self) -> frozenset[int]:
    return super()._control_ids_for_bytes() | self._control_ids

  def _token_bytes(self, i: int) -> bytes:
    piece = self._sp.id_to_piece(i)
    if self._sp.is_byte(i):  # '<0xAB>'
      return bytes([int(piece[3:5], 16)])
    if self._sp.is_unknown(i):
      return self._sp.decode([i]).encode('utf-8')
    return piece.replace('\u2581', ' ').encode('utf-8')

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  def token_to_id(self, token: str) -> int | None:
    i = self._sp.piece_to_id(token)  # The unk id when absent.
    return None if self._sp.id_to_piece(i) != token else i

  def id_to_token(self, i: int) -> str:
    return self._sp.id_to_piece(self._check_ids([i])[0])

  def save(self, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, SENTENCEPIECE_FILE)
    with open(path, 'wb') as f:
      f.write(self._model_proto)
    logging.info('Wrote SentencePiece model to %s', path)
