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
from collections.abc import Mapping, Sequence
import json
import os
from typing import Any

from absl import logging

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


# The file names `load_tokenizer` looks for in a directory, in order.
_LOADER_FILES = (HF_FILE, SENTENCEPIECE_FILE, CHAR_FILE)


def _loader(name: str):
  """Returns the `from_file` of the implementation that reads file `name`."""
  return {
      HF_FILE: __getattr__('HFTokenizer').from_file,
      SENTENCEPIECE_FILE: __getattr__('SentencePieceTokenizer').from_file,
      CHAR_FILE: CharTokenizer.from_file,
  }[name]


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
  names = ', '.join(_LOADER_FILES)
  if os.path.isdir(path):
    for name in _LOADER_FILES:
      file = os.path.join(path, name)
      if os.path.isfile(file):
        return _loader(name)(file)
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
    return __getattr__('SentencePieceTokenizer').from_file(path)
  if basename.endswith('.json'):
    return __getattr__('HFTokenizer').from_file(path)
  raise ValueError(
      f'Cannot tell the tokenizer type of file {path}: expected one of {names},'
      ' a *.model (SentencePiece) or a *.json (Hugging Face) file'
  )


# Implementations live in their own modules, which import the base class
# above. They are loaded on first use (PEP 562), so `from
# jaxreason.data.tokenizer import HFTokenizer` works and so does importing
# `jaxreason.data.hf_tokenizer` first: no import cycle either way.
_LAZY = {
    'HFTokenizer': 'jaxreason.data.hf_tokenizer',
    'SentencePieceTokenizer': 'jaxreason.data.sentencepiece_tokenizer',
}


def __getattr__(name: str):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
