"""One tokenizer interface for the codebase, with three implementations.

* `CharTokenizer`: a fixed character vocabulary plus special tokens. Digits are
  one token each; this is what the tiny CPU demonstrations use.
* `SentencePieceTokenizer`: a SentencePiece model, trainable in memory.
* `HFTokenizer`: a Hugging Face `tokenizer.json` (e.g. Qwen2.5's), read with the
  `tokenizers` package, plus the usual config files next to it.

`load_tokenizer(path)` picks the implementation from the files it finds. Every
implementation formats chats the same way (ChatML, as Qwen does), see
`Tokenizer.apply_chat_template`.

Example:

  tokenizer = load_tokenizer('/path/to/Qwen2.5-0.5B-Instruct')
  prompt = tokenizer.apply_chat_template([{'role': 'user', 'content': '1+1?'}])
  ids = tokenizer.encode(prompt)
"""

import abc
from collections.abc import Iterable, Mapping, Sequence
import functools
import io
import json
import os
from typing import Any

from absl import logging
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2
import tokenizers

IM_START = '<|im_start|>'
IM_END = '<|im_end|>'
THINK_START = '<think>'
THINK_END = '</think>'
CHAT_TOKENS = (IM_START, IM_END, THINK_START, THINK_END)

CHAR_FILE = 'tokenizer_char.json'
SENTENCEPIECE_FILE = 'tokenizer.model'
HF_FILE = 'tokenizer.json'
HF_CONFIG_FILE = 'tokenizer_config.json'
HF_SPECIAL_TOKENS_MAP_FILE = 'special_tokens_map.json'
HF_GENERATION_CONFIG_FILE = 'generation_config.json'

# Printable ASCII (space to '~', which includes LaTeX's `\ { } ^ _ $`), plus
# newline and tab.
DEFAULT_CHARS = '\n\t' + ''.join(chr(c) for c in range(0x20, 0x7F))


class Tokenizer(abc.ABC):
  """Text <-> token ids, special tokens, and the chat format.

  Subclasses pass the special ids to `__init__` and implement `_encode`,
  `_decode`, `vocab_size`, `token_to_id`, `id_to_token` and `save`.
  """

  def __init__(
      self,
      *,
      bos_id: int | None,
      eos_id: int | None,
      pad_id: int,
      special_tokens: Mapping[str, int],
  ):
    self._bos_id = bos_id
    self._eos_id = eos_id
    self._pad_id = pad_id
    self._special = dict(special_tokens)
    self._special_ids = frozenset(self._special.values())

  def encode(
      self, text: str, *, add_bos: bool = False, add_eos: bool = False
  ) -> list[int]:
    """Returns the ids of `text`.

    Special tokens written literally in `text` (e.g. '<|im_end|>') become their
    single id. Nothing is added unless asked; `add_bos` is a no-op for
    tokenizers without a bos token (Qwen's), likewise `add_eos`.

    Args:
      text: the text.
      add_bos: prepend the bos id.
      add_eos: append the eos id.

    Returns:
      The ids.
    """
    ids = self._encode(text)
    if add_bos and self._bos_id is not None:
      ids = [self._bos_id] + ids
    if add_eos and self._eos_id is not None:
      ids = ids + [self._eos_id]
    return ids

  def decode(
      self, ids: Sequence[int], *, skip_special_tokens: bool = False
  ) -> str:
    """Returns the text of `ids`, with special tokens unless skipped."""
    ids = self._check_ids(ids)
    if skip_special_tokens:
      ids = [i for i in ids if i not in self._special_ids]
    return self._decode(ids)

  def token_bytes(self, i: int) -> bytes:
    """The UTF-8 bytes token `i` adds to the text; b'' for control tokens.

    Control tokens are bos, eos and pad (and SentencePiece's other control
    pieces): they carry no text. Other special tokens (chat tokens such as
    '</think>') are their text. A byte-level token can be part of a UTF-8
    character; concatenating the bytes of a sequence's tokens gives the
    bytes of its decoded text (for tokenizers whose decoding is per token).
    Used to match stop strings across token boundaries.

    Args:
      i: a token id.

    Returns:
      The bytes.
    """
    i = self._check_ids([i])[0]
    if i in self._control_ids_for_bytes():
      return b''
    return self._token_bytes(i)

  def _control_ids_for_bytes(self) -> frozenset[int]:
    return frozenset(
        x for x in (self._bos_id, self._eos_id, self._pad_id) if x is not None
    )

  def _token_bytes(self, i: int) -> bytes:
    """`token_bytes` of a valid non-control id; default: decode it alone."""
    return self._decode([i]).encode('utf-8')

  @abc.abstractmethod
  def _encode(self, text: str) -> list[int]:
    """`encode` without bos and eos."""

  @abc.abstractmethod
  def _decode(self, ids: list[int]) -> str:
    """`decode` of valid ids, special ones written out."""

  @property
  @abc.abstractmethod
  def vocab_size(self) -> int:
    """Number of ids (a model's embedding may have more rows)."""

  @abc.abstractmethod
  def token_to_id(self, token: str) -> int | None:
    """Returns the id of vocabulary entry `token`, or None if absent."""

  @abc.abstractmethod
  def id_to_token(self, i: int) -> str:
    """Returns the vocabulary entry of id `i`; ValueError if out of range."""

  @abc.abstractmethod
  def save(self, directory: str) -> None:
    """Writes files into `directory` that `load_tokenizer(directory)` reads."""

  @property
  def bos_id(self) -> int | None:
    """Beginning-of-sequence id, or None if the tokenizer has none."""
    return self._bos_id

  @property
  def eos_id(self) -> int | None:
    """End-of-sequence id, or None if the tokenizer has none."""
    return self._eos_id

  @property
  def pad_id(self) -> int:
    """Padding id (the eos id when no pad token is configured)."""
    return self._pad_id

  @property
  def special_tokens(self) -> dict[str, int]:
    """Special token strings to their ids, e.g. {'<|im_start|>': 3, ...}."""
    return dict(self._special)

  def apply_chat_template(
      self,
      messages: Sequence[Mapping[str, str]],
      *,
      add_generation_prompt: bool = True,
  ) -> str:
    """Formats `messages` in ChatML, the format of Qwen2.5's chat template.

    Each message becomes '<|im_start|>{role}\\n{content}<|im_end|>\\n'; with
    `add_generation_prompt`, '<|im_start|>assistant\\n' follows. Unlike the
    Jinja template shipped with Qwen2.5, no default system prompt ("You are
    Qwen, created by Alibaba Cloud...") is inserted when the first message is
    not a system message: pass one explicitly to match Qwen's prompts.

    Args:
      messages: dicts with string fields 'role' and 'content'.
      add_generation_prompt: whether to open an assistant turn at the end.

    Returns:
      The formatted text, to be passed to `encode`.
    """
    parts = []
    for index, message in enumerate(messages):
      for field in ('role', 'content'):
        if not isinstance(message.get(field), str):
          raise ValueError(
              f'messages[{index}] needs a string field {field!r}, got'
              f' {message!r}'
          )
      parts.append(
          f'{IM_START}{message["role"]}\n{message["content"]}{IM_END}\n'
      )
    if add_generation_prompt:
      parts.append(f'{IM_START}assistant\n')
    return ''.join(parts)

  def _check_ids(self, ids: Sequence[int]) -> list[int]:
    ids = [int(i) for i in ids]
    vocab_size = self.vocab_size
    for position, i in enumerate(ids):
      if not 0 <= i < vocab_size:
        raise ValueError(
            f'id {i} at position {position} is outside the vocabulary'
            f' [0, {vocab_size})'
        )
    return ids


class CharTokenizer(Tokenizer):
  """One id per character, after the special tokens.

  Ids: '<pad>'=0, '<bos>'=1, '<eos>'=2, then `CHAT_TOKENS`, then `chars` in
  order. Special tokens written literally in the text are encoded as their id
  (longest match first); every other character must be in `chars`.
  """

  SPECIAL_TOKENS = ('<pad>', '<bos>', '<eos>') + CHAT_TOKENS

  def __init__(self, chars: str | Sequence[str] = DEFAULT_CHARS):
    chars = list(chars)
    for index, char in enumerate(chars):
      if not isinstance(char, str) or len(char) != 1:
        raise ValueError(f'chars[{index}] = {char!r} is not a single character')
    if len(set(chars)) != len(chars):
      duplicates = sorted({c for c in chars if chars.count(c) > 1})
      raise ValueError(f'chars has duplicate characters {duplicates!r}')
    special = {t: i for i, t in enumerate(self.SPECIAL_TOKENS)}
    super().__init__(
        bos_id=special['<bos>'],
        eos_id=special['<eos>'],
        pad_id=special['<pad>'],
        special_tokens=special,
    )
    self._chars = ''.join(chars)
    self._id_to_token = list(self.SPECIAL_TOKENS) + chars
    self._char_to_id = {c: i + len(special) for i, c in enumerate(chars)}
    # Candidate special tokens by first character, longest first.
    self._specials_by_first_char: dict[str, list[str]] = {}
    for token in sorted(special, key=len, reverse=True):
      self._specials_by_first_char.setdefault(token[0], []).append(token)

  @classmethod
  def from_file(cls, path: str) -> 'CharTokenizer':
    """Reads a `tokenizer_char.json` written by `save`."""
    data = _read_json(path, required=True)
    if data.get('special_tokens') != list(cls.SPECIAL_TOKENS):
      raise ValueError(
          f'{path}: field "special_tokens" is {data.get("special_tokens")!r},'
          f' expected {list(cls.SPECIAL_TOKENS)!r}'
      )
    if not isinstance(data.get('chars'), str):
      raise ValueError(f'{path}: field "chars" must be a string')
    return cls(data['chars'])

  def _encode(self, text: str) -> list[int]:
    ids = []
    position = 0
    while position < len(text):
      char = text[position]
      for token in self._specials_by_first_char.get(char, ()):
        if text.startswith(token, position):
          ids.append(self._special[token])
          position += len(token)
          break
      else:
        if char not in self._char_to_id:
          raise ValueError(
              f'CharTokenizer: character {char!r} (U+{ord(char):04X}) at'
              f' position {position} is not in the vocabulary'
          )
        ids.append(self._char_to_id[char])
        position += 1
    return ids

  def _decode(self, ids: list[int]) -> str:
    return ''.join(self._id_to_token[i] for i in ids)

  @property
  def vocab_size(self) -> int:
    return len(self._id_to_token)

  def token_to_id(self, token: str) -> int | None:
    return self._special.get(token, self._char_to_id.get(token))

  def id_to_token(self, i: int) -> str:
    return self._id_to_token[self._check_ids([i])[0]]

  def save(self, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CHAR_FILE)
    data = {'special_tokens': list(self.SPECIAL_TOKENS), 'chars': self._chars}
    with open(path, 'w', encoding='utf-8') as f:
      json.dump(data, f, indent=2)
    logging.info('Wrote CharTokenizer to %s', path)


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


class HFTokenizer(Tokenizer):
  """A Hugging Face fast tokenizer (`tokenizer.json`), without transformers.

  `encode` never adds the tokenizer's own template tokens (it calls
  `add_special_tokens=False`); only `add_bos`/`add_eos` add anything.
  `vocab_size` counts the tokenizer's entries, added tokens included; a model's
  embedding can be larger (Qwen2.5: 151665 entries, 151936 rows).
  """

  def __init__(
      self,
      tokenizer: tokenizers.Tokenizer,
      *,
      bos_token: str | None = None,
      eos_token: str | None = None,
      pad_token: str | None = None,
      config: Mapping[str, Any] | None = None,
      source: str = '<in memory>',
  ):
    """Wraps `tokenizer`.

    Args:
      tokenizer: the `tokenizers.Tokenizer`.
      bos_token: the bos token string, or None.
      eos_token: the eos token string, or None.
      pad_token: the pad token string; None means the eos token.
      config: the `tokenizer_config.json` contents: its `added_tokens_decoder`
        adds and marks special tokens, and `save` writes it back.
      source: where the tokenizer came from, for error messages.
    """
    self._tok = tokenizer
    self._config = dict(config or {})
    self._source = source
    special = _register_added_tokens(
        tokenizer, self._config.get('added_tokens_decoder', {}), source
    )
    bos_id = self._id_of(bos_token, 'bos_token')
    eos_id = self._id_of(eos_token, 'eos_token')
    pad_id = self._id_of(pad_token, 'pad_token')
    if pad_id is None:
      pad_id = eos_id
    if pad_id is None:
      raise ValueError(
          f'{source}: neither pad_token nor eos_token is configured; set one'
          f' in {HF_CONFIG_FILE}'
      )
    for token, i in ((bos_token, bos_id), (eos_token, eos_id)):
      if i is not None:
        special[token] = i
    special[tokenizer.id_to_token(pad_id)] = pad_id
    super().__init__(
        bos_id=bos_id, eos_id=eos_id, pad_id=pad_id, special_tokens=special
    )

  @classmethod
  def from_file(cls, path: str) -> 'HFTokenizer':
    """Reads `tokenizer.json` (a file, or a directory holding one).

    bos/eos/pad tokens come from `tokenizer_config.json`; a field absent there
    (not null: Qwen's `"bos_token": null` means no bos) is looked up in
    `special_tokens_map.json`, then as `<name>_token_id` in
    `generation_config.json` (the first id if a list).

    Args:
      path: the `tokenizer.json` file or its directory.

    Returns:
      The tokenizer.
    """
    if os.path.isdir(path):
      directory, file = path, os.path.join(path, HF_FILE)
    else:
      directory, file = os.path.dirname(path), path
    if not os.path.isfile(file):
      raise FileNotFoundError(f'No Hugging Face tokenizer file {file}')
    try:
      tokenizer = tokenizers.Tokenizer.from_file(file)
    except Exception as e:
      raise ValueError(
          f'{file}: not a Hugging Face tokenizer.json ({e})'
      ) from e
    config_path, map_path, generation_path = (
        os.path.join(directory, name)
        for name in (
            HF_CONFIG_FILE,
            HF_SPECIAL_TOKENS_MAP_FILE,
            HF_GENERATION_CONFIG_FILE,
        )
    )
    config = _read_json(config_path)
    string_sources = [(config_path, config), (map_path, _read_json(map_path))]
    id_source = (generation_path, _read_json(generation_path))
    tokens = {
        f'{name}_token': _find_token(name, string_sources, id_source, tokenizer)
        for name in ('bos', 'eos', 'pad')
    }
    logging.info('Loaded %s with special tokens %s', file, tokens)
    return cls(tokenizer, **tokens, config=config, source=file)

  def _id_of(self, token: str | None, field: str) -> int | None:
    if token is None:
      return None
    i = self._tok.token_to_id(token)
    if i is None:
      raise ValueError(
          f'{self._source}: {field} {token!r} is not in the vocabulary'
      )
    return i

  def _encode(self, text: str) -> list[int]:
    return list(self._tok.encode(text, add_special_tokens=False).ids)

  def _decode(self, ids: list[int]) -> str:
    return self._tok.decode(ids, skip_special_tokens=False)

  @functools.cached_property
  def _byte_level(self) -> bool:
    """Whether the decoder is GPT-2 byte-level (Qwen, Llama-3)."""
    decoder = json.loads(self._tok.to_str()).get('decoder') or {}
    parts = decoder.get('decoders') or [decoder]
    return any(d.get('type') == 'ByteLevel' for d in parts)

  @functools.cached_property
  def _added_text(self) -> dict[int, str]:
    return {
        i: t.content for i, t in self._tok.get_added_tokens_decoder().items()
    }

  def _token_bytes(self, i: int) -> bytes:
    if i in self._added_text:  # Added tokens are stored as their text.
      return self._added_text[i].encode('utf-8')
    if self._byte_level:
      return bytes(_UNICODE_TO_BYTE[c] for c in self._tok.id_to_token(i))
    return self._tok.decode([i], skip_special_tokens=False).encode('utf-8')

  @property
  def vocab_size(self) -> int:
    return self._tok.get_vocab_size(with_added_tokens=True)

  def token_to_id(self, token: str) -> int | None:
    return self._tok.token_to_id(token)

  def id_to_token(self, i: int) -> str:
    token = self._tok.id_to_token(self._check_ids([i])[0])
    if token is None:
      raise ValueError(f'{self._source}: id {i} has no token')
    return token

  def save(self, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    self._tok.save(os.path.join(directory, HF_FILE))
    config = dict(self._config)
    config.setdefault('tokenizer_class', 'PreTrainedTokenizerFast')
    for field, i in (
        ('bos_token', self._bos_id),
        ('eos_token', self._eos_id),
        ('pad_token', self._pad_id),
    ):
      config[field] = None if i is None else self.id_to_token(i)
    with open(
        os.path.join(directory, HF_CONFIG_FILE), 'w', encoding='utf-8'
    ) as f:
      json.dump(config, f, indent=2, ensure_ascii=False)
    logging.info('Wrote %s and %s to %s', HF_FILE, HF_CONFIG_FILE, directory)


def _bytes_to_unicode() -> dict[int, str]:
  """GPT-2's byte-level map: each byte to a printable character."""
  printable = (
      list(range(ord('!'), ord('~') + 1))
      + list(range(ord('\xa1'), ord('\xac') + 1))
      + list(range(ord('\xae'), ord('\xff') + 1))
  )
  chars = list(printable)
  extra = 0
  for b in range(256):
    if b not in printable:
      printable.append(b)
      chars.append(256 + extra)
      extra += 1
  return {b: chr(c) for b, c in zip(printable, chars)}


_UNICODE_TO_BYTE = {c: b for b, c in _bytes_to_unicode().items()}


def _read_json(path: str, *, required: bool = False) -> dict[str, Any]:
  """Returns the JSON object in `path`, or {} if absent and not `required`."""
  if not required and not os.path.isfile(path):
    return {}
  with open(path, encoding='utf-8') as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path}: invalid JSON ({e})') from e
  if not isinstance(data, dict):
    raise ValueError(
        f'{path}: expected a JSON object, got {type(data).__name__}'
    )
  return data


def _token_content(value: Any, path: str, field: str) -> str | None:
  """A token field is null, a string, or an AddedToken dict with 'content'."""
  if value is None or isinstance(value, str):
    return value
  if isinstance(value, dict) and isinstance(value.get('content'), str):
    return value['content']
  raise ValueError(f'{path}: field {field!r} is not a token: {value!r}')


def _find_token(
    name: str,
    string_sources: Sequence[tuple[str, Mapping[str, Any]]],
    id_source: tuple[str, Mapping[str, Any]],
    tokenizer: tokenizers.Tokenizer,
) -> str | None:
  """Looks up token `name` ('bos', 'eos', 'pad') in the HF config files."""
  field = f'{name}_token'
  for path, data in string_sources:
    if field in data:
      return _token_content(data[field], path, field)
  path, data = id_source
  i = data.get(f'{name}_token_id')
  if isinstance(i, list):
    i = i[0] if i else None
  if i is None:
    return None
  token = tokenizer.id_to_token(i) if isinstance(i, int) else None
  if token is None:
    raise ValueError(f'{path}: field {name}_token_id={i!r} is not a token id')
  return token


def _register_added_tokens(
    tokenizer: tokenizers.Tokenizer,
    added_tokens_decoder: Mapping[str, Mapping[str, Any]],
    source: str,
) -> dict[str, int]:
  """Adds config tokens missing from `tokenizer`, as transformers does.

  Args:
    tokenizer: modified in place.
    added_tokens_decoder: `tokenizer_config.json`'s {id: AddedToken dict}.
    source: for messages.

  Returns:
    The special tokens (special in `tokenizer.json` or in the config) to ids.
  """
  for key, entry in added_tokens_decoder.items():
    if not isinstance(entry, dict) or not isinstance(entry.get('content'), str):
      raise ValueError(
          f'{source}: {HF_CONFIG_FILE} field added_tokens_decoder[{key!r}] is'
          f' not an AddedToken dict: {entry!r}'
      )
    content = entry['content']
    special = bool(entry.get('special', False))
    if tokenizer.token_to_id(content) is None:
      added = tokenizers.AddedToken(
          content,
          single_word=entry.get('single_word', False),
          lstrip=entry.get('lstrip', False),
          rstrip=entry.get('rstrip', False),
          normalized=entry.get('normalized', not special),
          special=special,
      )
      tokenizer.add_tokens([added])
      logging.warning(
          '%s: added token %r from %s (id %d, config says %s)',
          source,
          content,
          HF_CONFIG_FILE,
          tokenizer.token_to_id(content),
          key,
      )
  special_tokens = {
      token.content: i
      for i, token in tokenizer.get_added_tokens_decoder().items()
      if token.special
  }
  for entry in added_tokens_decoder.values():
    if entry.get('special', False):
      special_tokens[entry['content']] = tokenizer.token_to_id(entry['content'])
  return special_tokens


_LOADERS = (
    (HF_FILE, HFTokenizer.from_file),
    (SENTENCEPIECE_FILE, SentencePieceTokenizer.from_file),
    (CHAR_FILE, CharTokenizer.from_file),
)


def load_tokenizer(path: str) -> Tokenizer:
  """Loads the tokenizer in directory or file `path`.

  In a directory, the first file found among `tokenizer.json` (HFTokenizer),
  `tokenizer.model` (SentencePieceTokenizer) and `tokenizer_char.json`
  (CharTokenizer) decides. A file is recognized by its name: `*.model`,
  `tokenizer_char.json`, or another `*.json` (a Hugging Face tokenizer).

  Args:
    path: a directory or a tokenizer file.

  Returns:
    The tokenizer.
  """
  names = ', '.join(name for name, _ in _LOADERS)
  if os.path.isdir(path):
    for name, loader in _LOADERS:
      file = os.path.join(path, name)
      if os.path.isfile(file):
        return loader(file)
    raise FileNotFoundError(
        f'No tokenizer in directory {path}: looked for {names}'
    )
  if not os.path.exists(path):
    raise FileNotFoundError(
        f'Tokenizer path {path} does not exist (expected a directory holding'
        f' one of {names}, or one of those files)'
    )
  basename = os.path.basename(path)
  if basename == CHAR_FILE:
    return CharTokenizer.from_file(path)
  if basename.endswith('.model'):
    return SentencePieceTokenizer.from_file(path)
  if basename.endswith('.json'):
    return HFTokenizer.from_file(path)
  raise ValueError(
      f'Cannot tell the tokenizer type of file {path}: expected one of {names},'
      ' a *.model (SentencePiece) or a *.json (Hugging Face) file'
  )
