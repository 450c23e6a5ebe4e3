"""`HFTokenizer`: a Hugging Face `tokenizer.json`, without transformers.

Reads the file with the `tokenizers` package, plus the usual config files next
to it (`tokenizer_config.json`, `special_tokens_map.json`,
`generation_config.json`). Import it from `jaxreason.data.tokenizer`, which
re-exports it.
"""

from collections.abc import Mapping, Sequence
import functools
import json
import os
from typing import Any

from absl import logging
import tokenizers

from jaxreason.data.tokenizer import HF_CONFIG_FILE
from jaxreason.data.tokenizer import HF_FILE
from jaxreason.data.tokenizer import HF_GENERATION_CONFIG_FILE
from jaxreason.data.tokenizer import HF_SPECIAL_TOKENS_MAP_FILE
from jaxreason.data.tokenizer import _read_json
from jaxreason.data.tokenizer import Tokenizer


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
