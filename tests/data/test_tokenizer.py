"""Tests for jaxreason.data.tokenizer."""

import json
import os
import random

import pytest
import tokenizers
from tokenizers import decoders
from tokenizers import models
from tokenizers import pre_tokenizers
from tokenizers import processors
from tokenizers import trainers

from jaxreason.data import tokenizer as tokenizer_lib

ARITHMETIC_TEXT = (
    'Compute 12 + 30 - 7.\n<think>12+30=42, 42-7=35</think>\n'
    'The answer is \\boxed{35}.\n'
)
MESSAGES = [
    {'role': 'system', 'content': 'Reason step by step.'},
    {'role': 'user', 'content': 'What is 7 * 6?'},
    {'role': 'assistant', 'content': '<think>7*6=42</think>\\boxed{42}'},
    {'role': 'user', 'content': 'And 7 * 7?'},
]
CHATML = (
    '<|im_start|>system\nReason step by step.<|im_end|>\n'
    '<|im_start|>user\nWhat is 7 * 6?<|im_end|>\n'
    '<|im_start|>assistant\n<think>7*6=42</think>\\boxed{42}<|im_end|>\n'
    '<|im_start|>user\nAnd 7 * 7?<|im_end|>\n'
)
# The ChatML template of Qwen2.5, without its default system prompt and tools.
CHATML_JINJA = (
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n'"
    " + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    '{%- endif %}'
)
HF_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']


def _arithmetic_lines(n: int, seed: int = 0) -> list[str]:
  rng = random.Random(seed)
  lines = []
  for _ in range(n):
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    op, value = rng.choice(
        [('plus', a + b), ('minus', a - b), ('times', a * b)]
    )
    lines.append(
        f'Question: what is {a} {op} {b}? Answer: {a} {op} {b} equals'
        f' {value}, so the answer is \\boxed{{{value}}}.'
    )
  return lines


# CharTokenizer.


def test_char_round_trip_one_token_per_character():
  tok = tokenizer_lib.CharTokenizer()
  text = 'Compute 12 + 30 - 7.\nThe answer is \\boxed{12}.\n'
  ids = tok.encode(text)
  assert len(ids) == len(text)
  assert tok.decode(ids) == text
  assert tok.encode('12') == [tok.token_to_id('1'), tok.token_to_id('2')]
  assert tok.id_to_token(ids[-2]) == '.'


def test_char_special_tokens_are_single_ids():
  tok = tokenizer_lib.CharTokenizer()
  assert tok.pad_id == 0
  assert set(tok.special_tokens) == {
      '<pad>',
      '<bos>',
      '<eos>',
      '<|im_start|>',
      '<|im_end|>',
      '<think>',
      '</think>',
  }
  special = tok.special_tokens
  ids = tok.encode(ARITHMETIC_TEXT, add_bos=True, add_eos=True)
  assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
  assert ids.count(special['<think>']) == 1
  assert ids.count(special['</think>']) == 1
  assert tok.decode(ids) == '<bos>' + ARITHMETIC_TEXT + '<eos>'
  assert tok.decode(ids, skip_special_tokens=True) == ARITHMETIC_TEXT.replace(
      '<think>', ''
  ).replace('</think>', '')
  # '<' alone is a character; '<|im_end|>' is not '<' followed by characters.
  assert tok.encode('<b') == [tok.token_to_id('<'), tok.token_to_id('b')]
  assert tok.encode('<|im_end|>\n') == [
      special['<|im_end|>'],
      tok.token_to_id('\n'),
  ]


def test_char_unknown_character_error_names_it():
  tok = tokenizer_lib.CharTokenizer()
  with pytest.raises(ValueError, match=r"'é'.*position 3"):
    tok.encode('abcé')
  with pytest.raises(ValueError, match='outside the vocabulary'):
    tok.decode([tok.vocab_size])


def test_char_save_load(tmp_path):
  tok = tokenizer_lib.CharTokenizer('0123456789+-=\n')
  tok.save(str(tmp_path))
  loaded = tokenizer_lib.load_tokenizer(str(tmp_path))
  assert isinstance(loaded, tokenizer_lib.CharTokenizer)
  assert loaded.vocab_size == tok.vocab_size == 7 + 14
  assert loaded.encode('<bos>12+3=15\n') == tok.encode('<bos>12+3=15\n')
  with pytest.raises(ValueError, match="'a'"):
    loaded.encode('a')


# SentencePieceTokenizer.


@pytest.fixture(scope='module')
def sp_bpe():
  # byte_fallback reserves 256 byte pieces, hence a vocabulary above 256.
  return tokenizer_lib.SentencePieceTokenizer.train(
      _arithmetic_lines(300), vocab_size=400, model_type='bpe'
  )


def test_sentencepiece_ids_of_special_tokens(sp_bpe):
  assert (sp_bpe.pad_id, sp_bpe.bos_id, sp_bpe.eos_id) == (0, 2, 3)
  assert sp_bpe.token_to_id('<unk>') == 1
  for i, token in enumerate(tokenizer_lib.CHAT_TOKENS):
    assert sp_bpe.special_tokens[token] == 4 + i
    assert sp_bpe.encode(token) == [4 + i]
  assert sp_bpe.token_to_id('no such piece') is None


def test_sentencepiece_round_trip(sp_bpe):
  held_out = _arithmetic_lines(5, seed=1)
  # Newlines, double spaces and 'é' do not occur in training: byte fallback.
  for text in held_out + [ARITHMETIC_TEXT, '  café\n\n x ', '']:
    assert sp_bpe.decode(sp_bpe.encode(text)) == text
  ids = sp_bpe.encode(held_out[0], add_bos=True, add_eos=True)
  assert sp_bpe.decode(ids) == '<s>' + held_out[0] + '</s>'
  assert sp_bpe.decode(ids, skip_special_tokens=True) == held_out[0]
  # The BPE merges compress the text it was trained on.
  assert len(sp_bpe.encode(held_out[0])) < len(held_out[0]) / 2


def test_sentencepiece_chat_tokens_single_ids(sp_bpe):
  text = tokenizer_lib.CharTokenizer().apply_chat_template(MESSAGES)
  ids = sp_bpe.encode(text)
  assert ids.count(sp_bpe.special_tokens['<|im_start|>']) == 5
  assert ids.count(sp_bpe.special_tokens['<|im_end|>']) == 4
  assert ids.count(sp_bpe.special_tokens['<think>']) == 1
  assert sp_bpe.decode(ids) == text


def test_sentencepiece_splits_digits(sp_bpe):
  text = 'what is 12345 plus 678? \\boxed{13023}'
  pieces = [sp_bpe.id_to_token(i) for i in sp_bpe.encode(text)]
  digit_counts = [sum(c.isdigit() for c in piece) for piece in pieces]
  assert max(digit_counts) == 1
  assert sum(digit_counts) == sum(c.isdigit() for c in text)


def test_sentencepiece_unigram_small_vocab():
  # The unigram model prunes pieces the data does not need; on this small
  # corpus it keeps fewer than 150, so the limit is made soft.
  tok = tokenizer_lib.SentencePieceTokenizer.train(
      _arithmetic_lines(300),
      vocab_size=150,
      model_type='unigram',
      byte_fallback=False,
      hard_vocab_limit=False,
  )
  assert 8 + 10 < tok.vocab_size <= 150
  text = _arithmetic_lines(1, seed=2)[0] + '<|im_end|>'
  ids = tok.encode(text)
  assert tok.decode(ids) == text
  assert ids[-1] == tok.special_tokens['<|im_end|>']
  pieces = [tok.id_to_token(i) for i in tok.encode('9876543210')]
  assert all(sum(c.isdigit() for c in piece) == 1 for piece in pieces)


def test_sentencepiece_save_load_identical_ids(sp_bpe, tmp_path):
  sp_bpe.save(str(tmp_path))
  assert os.listdir(tmp_path) == ['tokenizer.model']
  for path in (str(tmp_path), str(tmp_path / 'tokenizer.model')):
    loaded = tokenizer_lib.load_tokenizer(path)
    assert isinstance(loaded, tokenizer_lib.SentencePieceTokenizer)
    assert loaded.special_tokens == sp_bpe.special_tokens
    for text in _arithmetic_lines(5, seed=3) + [ARITHMETIC_TEXT]:
      assert loaded.encode(text) == sp_bpe.encode(text)


# HFTokenizer, checked against transformers.


def _write_hf_tokenizer(directory, config):
  tok = tokenizers.Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  # A template that `encode` must not apply (add_special_tokens=False).
  tok.post_processor = processors.TemplateProcessing(
      single='$A <|endoftext|>', special_tokens=[('<|endoftext|>', 0)]
  )
  trainer = trainers.BpeTrainer(
      vocab_size=400,
      special_tokens=HF_SPECIAL_TOKENS,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
      show_progress=False,
  )
  tok.train_from_iterator(_arithmetic_lines(200), trainer)
  os.makedirs(directory, exist_ok=True)
  tok.save(os.path.join(directory, 'tokenizer.json'))
  with open(os.path.join(directory, 'tokenizer_config.json'), 'w') as f:
    json.dump(config, f)


QWEN_STYLE_CONFIG = {
    'tokenizer_class': 'PreTrainedTokenizerFast',
    'bos_token': None,
    'eos_token': '<|im_end|>',
    'pad_token': '<|endoftext|>',
    'chat_template': CHATML_JINJA,
}
HF_TEXTS = [
    ARITHMETIC_TEXT,
    _arithmetic_lines(1, seed=4)[0],
    CHATML + '<|im_start|>assistant\n',
    'héllo  wörld\t\u4e2d\u6587 <|endoftext|>',
    '',
]


@pytest.fixture(scope='module')
def hf_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('hf'))
  _write_hf_tokenizer(directory, QWEN_STYLE_CONFIG)
  return directory


@pytest.fixture(scope='module')
def hf_reference(hf_dir):
  transformers = pytest.importorskip('transformers')
  return transformers.AutoTokenizer.from_pretrained(hf_dir)


def test_hf_ids_match_transformers(hf_dir, hf_reference):
  tok = tokenizer_lib.load_tokenizer(hf_dir)
  assert isinstance(tok, tokenizer_lib.HFTokenizer)
  assert tok.vocab_size == len(hf_reference)
  assert hf_reference.encode('1')[-1] == 0  # The template adds <|endoftext|>.
  for text in HF_TEXTS:
    ids = tok.encode(text)
    assert ids == hf_reference.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=True) == hf_reference.decode(
        ids, skip_special_tokens=True
    )


def test_hf_special_tokens_qwen_style(hf_dir, hf_reference):
  tok = tokenizer_lib.load_tokenizer(hf_dir)
  assert tok.bos_id is None and hf_reference.bos_token_id is None
  assert (
      tok.eos_id == hf_reference.eos_token_id == tok.token_to_id('<|im_end|>')
  )
  assert tok.pad_id == hf_reference.pad_token_id
  assert tok.pad_id == tok.token_to_id('<|endoftext|>')
  assert tok.special_tokens == {t: i for i, t in enumerate(HF_SPECIAL_TOKENS)}
  # add_bos is a no-op without a bos token.
  ids = tok.encode('1+1', add_bos=True, add_eos=True)
  assert ids == hf_reference.encode('1+1', add_special_tokens=False) + [
      tok.eos_id
  ]


def test_hf_chat_template_matches_chatml_and_transformers(hf_dir, hf_reference):
  tok = tokenizer_lib.load_tokenizer(hf_dir)
  for add_generation_prompt, expected in (
      (True, CHATML + '<|im_start|>assistant\n'),
      (False, CHATML),
  ):
    text = tok.apply_chat_template(
        MESSAGES, add_generation_prompt=add_generation_prompt
    )
    assert text == expected
    assert text == hf_reference.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=add_generation_prompt
    )
  with pytest.raises(ValueError, match=r"messages\[1\].*'content'"):
    tok.apply_chat_template(
        [{'role': 'user', 'content': 'a'}, {'role': 'user'}]
    )


def test_hf_save_load(hf_dir, tmp_path):
  tok = tokenizer_lib.load_tokenizer(hf_dir)
  tok.save(str(tmp_path))
  loaded = tokenizer_lib.load_tokenizer(str(tmp_path / 'tokenizer.json'))
  assert isinstance(loaded, tokenizer_lib.HFTokenizer)
  assert (loaded.bos_id, loaded.eos_id, loaded.pad_id) == (
      tok.bos_id,
      tok.eos_id,
      tok.pad_id,
  )
  for text in HF_TEXTS:
    assert loaded.encode(text) == tok.encode(text)
  with open(tmp_path / 'tokenizer_config.json') as f:
    assert json.load(f)['chat_template'] == CHATML_JINJA


def test_hf_fallbacks_for_eos_and_pad(tmp_path):
  # Without pad_token, pad is eos; without eos_token in tokenizer_config.json,
  # eos comes from generation_config.json (the first of a list).
  config = {'tokenizer_class': 'PreTrainedTokenizerFast'}
  _write_hf_tokenizer(str(tmp_path), config)
  with open(tmp_path / 'generation_config.json', 'w') as f:
    json.dump({'bos_token_id': 0, 'eos_token_id': [2, 0]}, f)
  tok = tokenizer_lib.load_tokenizer(str(tmp_path))
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (0, 2, 2)
  with open(tmp_path / 'special_tokens_map.json', 'w') as f:
    json.dump({'eos_token': {'content': '<|endoftext|>'}}, f)
  tok = tokenizer_lib.load_tokenizer(str(tmp_path))
  assert (tok.eos_id, tok.pad_id) == (0, 0)
  with open(tmp_path / 'tokenizer_config.json', 'w') as f:
    json.dump({'eos_token': '<|nope|>'}, f)
  with pytest.raises(ValueError, match=r"eos_token '<\|nope\|>'"):
    tokenizer_lib.load_tokenizer(str(tmp_path))


def test_hf_added_tokens_from_config_match_transformers(tmp_path):
  # Tokens in tokenizer_config.json's added_tokens_decoder but not in
  # tokenizer.json are added, as transformers does.
  transformers = pytest.importorskip('transformers')
  config = dict(QWEN_STYLE_CONFIG)
  config['added_tokens_decoder'] = {
      '400': {'content': '<think>', 'special': True},
      '401': {'content': '<tool_call>', 'special': False},
  }
  _write_hf_tokenizer(str(tmp_path), config)
  tok = tokenizer_lib.load_tokenizer(str(tmp_path))
  reference = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
  assert tok.token_to_id('<think>') == 400
  assert tok.token_to_id('<tool_call>') == 401
  assert '<think>' in tok.special_tokens
  assert '<tool_call>' not in tok.special_tokens
  text = '<think>2+2=4</think><tool_call>x<|im_end|>'
  ids = tok.encode(text)
  assert ids == reference.encode(text, add_special_tokens=False)
  assert ids[0] == 400
  assert (
      tok.decode(ids, skip_special_tokens=True) == '2+2=4</think><tool_call>x'
  )


# token_bytes: what stop strings are matched against.


def _joined_bytes(tok, ids):
  return b''.join(tok.token_bytes(i) for i in ids)


def test_char_token_bytes():
  tok = tokenizer_lib.CharTokenizer()
  text = 'a\n\nb </think> {x}'
  assert _joined_bytes(tok, tok.encode(text)) == text.encode()
  assert tok.token_bytes(tok.token_to_id('\n')) == b'\n'
  assert tok.token_bytes(tok.token_to_id('</think>')) == b'</think>'
  for control in (tok.pad_id, tok.bos_id, tok.eos_id):
    assert tok.token_bytes(control) == b''
  with pytest.raises(ValueError, match='outside the vocabulary'):
    tok.token_bytes(tok.vocab_size)


def test_sentencepiece_token_bytes(sp_bpe):
  # Spaces are '\u2581' in pieces; '\n' and 'é' only exist as byte pieces.
  for text in [ARITHMETIC_TEXT, '  café\n\n x ', 'Answer: 12 plus 3']:
    ids = sp_bpe.encode(text)
    assert _joined_bytes(sp_bpe, ids) == text.encode(), text
  newline = sp_bpe.token_to_id('<0x0A>')
  assert sp_bpe.token_bytes(newline) == b'\n'
  assert sp_bpe.token_bytes(sp_bpe.token_to_id('<0xC3>')) == b'\xc3'
  for control in (sp_bpe.pad_id, sp_bpe.bos_id, sp_bpe.eos_id):
    assert sp_bpe.token_bytes(control) == b''
  think = sp_bpe.special_tokens['</think>']  # User-defined: its text.
  assert sp_bpe.token_bytes(think) == b'</think>'
  spaced = [i for i in range(sp_bpe.vocab_size)
            if sp_bpe.id_to_token(i).startswith('\u2581')]
  assert spaced and sp_bpe.token_bytes(spaced[0]).startswith(b' ')


def test_hf_byte_level_token_bytes(hf_dir):
  tok = tokenizer_lib.load_tokenizer(hf_dir)
  # eos '<|im_end|>' and pad '<|endoftext|>' are control tokens: no bytes.
  for text in HF_TEXTS:
    expected = text.replace('<|im_end|>', '').replace('<|endoftext|>', '')
    assert _joined_bytes(tok, tok.encode(text)) == expected.encode(), text
  assert tok.token_bytes(tok.token_to_id('<|im_start|>')) == b'<|im_start|>'
  assert tok.token_bytes(tok.eos_id) == b''
  # Byte-level pieces of a multi-byte character are partial UTF-8 bytes.
  ids = tok.encode('\u4e2d')
  assert len(ids) > 1 and _joined_bytes(tok, ids) == '\u4e2d'.encode()
  assert tok.token_bytes(tok.token_to_id('\u0120')) == b' '  # GPT-2's space.


def test_hf_other_decoder_token_bytes():
  vocab = {'[UNK]': 0, 'hello': 1, 'world': 2}
  raw = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token='[UNK]'))
  raw.pre_tokenizer = pre_tokenizers.Whitespace()
  tok = tokenizer_lib.HFTokenizer(raw, eos_token='[UNK]')
  assert tok.token_bytes(1) == b'hello'
  assert tok.token_bytes(0) == b''


# load_tokenizer.


def test_load_tokenizer_errors_name_the_path(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    tokenizer_lib.load_tokenizer(str(tmp_path))
  assert str(tmp_path) in str(error.value)
  for name in ('tokenizer.json', 'tokenizer.model', 'tokenizer_char.json'):
    assert name in str(error.value)
  missing = str(tmp_path / 'missing')
  with pytest.raises(FileNotFoundError, match=missing):
    tokenizer_lib.load_tokenizer(missing)
  other = tmp_path / 'vocab.txt'
  other.write_text('a\n')
  with pytest.raises(ValueError, match=str(other)):
    tokenizer_lib.load_tokenizer(str(other))
