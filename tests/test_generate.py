"""The generate CLI and load_policy on a Hugging Face folder and a workdir.

The HF folder is a tiny random Qwen2 written by `transformers` with a BPE
tokenizer.json built by `tokenizers`; greedy completions and every token's
log-prob are checked against `transformers` (generate, and a forward pass).
The workdir comes from the SFT recipe (configs/sft/synthetic.py:debug, one
step) and is checked against the cache-free reference decoder.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers
from absl import flags

from jaxreason import generate
from jaxreason.data.tokenizer import CharTokenizer, load_tokenizer
from jaxreason.models.transformer import abstract_params
from jaxreason.sampling import load_policy
from jaxreason.sampling import reference
from jaxreason.sharding import mesh as mesh_lib
from jaxreason.sharding import rules as rules_lib
from jaxreason.train import checkpoint as checkpoint_lib
from jaxreason.train import run_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

SPECIAL = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
PROMPTS = ['Question: what is 12 plus 30?', 'hello there', 'what is 7 times']
MAX_NEW = 8


def _lines(n):
  rng = np.random.default_rng(0)
  return [f'Question: what is {a} plus {b}? It is {a + b}.\n\n'
          for a, b in rng.integers(0, 99, (n, 2))]


@pytest.fixture(scope='module')
def hf_dir(tmp_path_factory):
  """A random 2-layer Qwen2 (eos = <|im_end|>) and its tokenizer files."""
  path = str(tmp_path_factory.mktemp('qwen'))
  tok = tokenizers.Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(_lines(100), trainers.BpeTrainer(
      vocab_size=300, special_tokens=SPECIAL, show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  tok.save(os.path.join(path, 'tokenizer.json'))
  with open(os.path.join(path, 'tokenizer_config.json'), 'w') as f:
    json.dump({'tokenizer_class': 'PreTrainedTokenizerFast',
               'bos_token': None, 'eos_token': '<|im_end|>',
               'pad_token': '<|endoftext|>'}, f)
  config = transformers.Qwen2Config(
      vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
      max_position_embeddings=256, tie_word_embeddings=False,
      bos_token_id=None, eos_token_id=2, pad_token_id=0)
  model = transformers.Qwen2ForCausalLM(config).eval()
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      p.copy_(1.0 + 0.2 * noise if 'norm' in name else 0.3 * noise)
  model.save_pretrained(path)
  return path


def _write_jsonl(path, rows):
  with open(path, 'w') as f:
    for row in rows:
      f.write(row if isinstance(row, str) else json.dumps(row))
      f.write('\n')
  return str(path)


def _read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def _run(checkpoint, prompts, output, *flags):
  assert generate.main([f'--checkpoint={checkpoint}', f'--prompts={prompts}',
                        f'--output={output}', *flags]) == 0
  return _read_jsonl(output)


def _hf_logprobs(model, prompt, completion, temperature=1.0):
  """Teacher-forced log_softmax(logits / T) of each completion token."""
  ids = torch.tensor([prompt + completion])
  with torch.no_grad():
    logits = model(ids).logits[0, len(prompt) - 1:-1] / temperature
  logp = torch.log_softmax(logits.double(), -1)
  return logp[torch.arange(len(completion)), completion].numpy()


def test_hf_folder_greedy_and_sampled(hf_dir, tmp_path):
  model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
  # tokenizer.json as written (AutoTokenizer would build transformers 5's
  # Qwen2Tokenizer, whose pre-tokenizer is Qwen's, not this file's).
  hf_tok = transformers.PreTrainedTokenizerFast(
      tokenizer_file=os.path.join(hf_dir, 'tokenizer.json'))
  rows = [{'prompt': PROMPTS[0], 'id': 'a'},
          {'prompt_ids': hf_tok.encode(PROMPTS[1]), 'id': 'b'},
          {'prompt': PROMPTS[2], 'id': 'c', 'extra': [1, 2]}]
  prompts = _write_jsonl(tmp_path / 'in.jsonl', rows)
  # 3 prompts in batches of 2: the second (1 prompt) reuses the compilation.
  greedy = _run(hf_dir, prompts, tmp_path / 'greedy.jsonl', '--n=2',
                '--temperature=0', f'--max_new_tokens={MAX_NEW}',
                '--batch_size=2')
  assert len(greedy) == 6
  expected_ids = []
  for row in rows:
    prompt_ids = row.get('prompt_ids') or hf_tok.encode(row['prompt'])
    with torch.no_grad():
      ref = model.generate(
          torch.tensor([prompt_ids]), attention_mask=torch.ones(
              1, len(prompt_ids), dtype=torch.long), do_sample=False,
          max_new_tokens=MAX_NEW, eos_token_id=2, pad_token_id=0)
    expected_ids.append(ref[0, len(prompt_ids):].tolist())
  for i, out in enumerate(greedy):
    row = rows[i // 2]
    assert {k: out[k] for k in row} == row  # Input fields kept.
    assert set(out) == set(row) | set(generate.OUTPUT_FIELDS)
    assert out['sample_index'] == i % 2
    prompt_ids = row.get('prompt_ids') or hf_tok.encode(row['prompt'])
    expected = expected_ids[i // 2]
    assert out['completion_ids'] == expected
    ended = bool(expected) and expected[-1] == 2
    assert out['finish_reason'] == ('eos' if ended else 'length')
    text_ids = expected[:-1] if ended else expected
    assert out['completion'] == hf_tok.decode(text_ids)
    np.testing.assert_allclose(
        out['logprobs'], _hf_logprobs(model, prompt_ids, expected), atol=1e-4)

  # A stop string (given escaped, as on a command line) from the greedy
  # text; both runs below have one 2-byte stop: one decode compilation.
  text = greedy[0]['completion']
  starts = [i for i in range(1, len(text) - 1) if text[i:i + 2].isascii()]
  assert starts, text  # Deterministic (seeded model); ASCII: exact bytes.
  stop = text[starts[0]:starts[0] + 2]
  escaped = stop.replace('\\', '\\\\').replace('\n', '\\n')

  sampled = _run(hf_dir, prompts, tmp_path / 'sampled.jsonl', '--n=2',
                 '--temperature=1.5', '--top_k=50', '--seed=3',
                 f'--max_new_tokens={MAX_NEW}', '--batch_size=2',
                 f'--stop={escaped}')
  assert [o['sample_index'] for o in sampled] == [0, 1] * 3
  assert sampled[0]['completion_ids'] != sampled[1]['completion_ids']
  for out, row in zip(sampled, [r for r in rows for _ in range(2)]):
    prompt_ids = row.get('prompt_ids') or hf_tok.encode(row['prompt'])
    np.testing.assert_allclose(
        out['logprobs'],
        _hf_logprobs(model, prompt_ids, out['completion_ids'], 1.5),
        atol=1e-4)
    if len(out['completion_ids']) < MAX_NEW:
      assert out['finish_reason'] in ('eos', 'stop')
    else:
      assert out['finish_reason'] in ('eos', 'stop', 'length')

  # Greedy with the stop: the completion ends with the token completing it.
  stopped = _run(hf_dir, prompts, tmp_path / 'stop.jsonl', '--temperature=0',
                 f'--max_new_tokens={MAX_NEW}', f'--stop={escaped}')
  assert stopped[0]['finish_reason'] == 'stop'
  assert stopped[0]['completion'].find(stop) == text.find(stop)
  assert text.startswith(stopped[0]['completion'])
  assert len(stopped[0]['completion']) >= text.find(stop) + len(stop)


@pytest.fixture(scope='module')
def bare_dir(hf_dir, tmp_path_factory):
  """The same model without tokenizer files (weights and configs only)."""
  path = tmp_path_factory.mktemp('bare')
  for name in os.listdir(hf_dir):
    if not name.startswith('tokenizer'):
      shutil.copy(os.path.join(hf_dir, name), path / name)
  return str(path)


def _hf_greedy(model, prompt_ids, max_new=MAX_NEW):
  with torch.no_grad():
    ref = model.generate(
        torch.tensor([prompt_ids]), attention_mask=torch.ones(
            1, len(prompt_ids), dtype=torch.long), do_sample=False,
        max_new_tokens=max_new, eos_token_id=2, pad_token_id=0)
  return ref[0, len(prompt_ids):].tolist()


def test_hf_folder_onto_a_mesh(hf_dir):
  config, params, _ = load_policy(hf_dir)
  _assert_loads_onto_mesh(hf_dir, params, config)


def test_token_ids_without_a_tokenizer(hf_dir, bare_dir, tmp_path):
  assert not any(n.startswith('tokenizer') for n in os.listdir(bare_dir))
  with pytest.raises(FileNotFoundError, match='No tokenizer'):
    load_policy(bare_dir)
  _, _, tokenizer = load_policy(bare_dir, require_tokenizer=False)
  assert tokenizer is None
  model = transformers.AutoModelForCausalLM.from_pretrained(bare_dir).eval()
  rows = [{'prompt_ids': [17, 40, 5, 99, 120], 'id': 0},
          {'prompt_ids': [250], 'id': 1},
          {'prompt_ids': list(range(3, 40, 3)), 'id': 2}]
  prompts = _write_jsonl(tmp_path / 'ids.jsonl', rows)
  out = _run(bare_dir, prompts, tmp_path / 'out.jsonl', '--temperature=0',
             f'--max_new_tokens={MAX_NEW}')
  assert len(out) == 3
  for row, o in zip(rows, out):
    assert set(o) == set(row) | set(generate.OUTPUT_FIELDS) - {'completion'}
    expected = _hf_greedy(model, row['prompt_ids'])
    assert o['completion_ids'] == expected
    ended = bool(expected) and expected[-1] == 2
    assert o['finish_reason'] == ('eos' if ended else 'length')
    np.testing.assert_allclose(
        o['logprobs'], _hf_logprobs(model, row['prompt_ids'], expected),
        atol=1e-4)
  # The same ids with the tokenizer: the same tokens, and now the text.
  with_text = _run(hf_dir, prompts, tmp_path / 'with_text.jsonl',
                   '--temperature=0', f'--max_new_tokens={MAX_NEW}')
  assert [o['completion_ids'] for o in with_text] == [
      o['completion_ids'] for o in out]
  assert all(isinstance(o['completion'], str) for o in with_text)
  # Text, stop strings and chat templates need a tokenizer.
  text = _write_jsonl(tmp_path / 'text.jsonl', [rows[0], {'prompt': 'hi'}])
  with pytest.raises(ValueError, match=r'text\.jsonl:2: "prompt" is text.*'
                     'no tokenizer'):
    _run(bare_dir, text, tmp_path / 'x.jsonl')
  for flag in ('--stop=a', '--chat'):
    with pytest.raises(ValueError, match=f'{flag[:6]}.* needs a tokenizer'):
      _run(bare_dir, prompts, tmp_path / 'x.jsonl', flag)


def test_flags(tmp_path):
  args = generate.parse_args(['--checkpoint=c', '--prompts=p', '--output=o',
                              '--stop=a', '--stop=\\n', '--nochat', '--n=3',
                              '--dtype=bfloat16'])
  assert args == generate.Options(checkpoint='c', prompts='p', output='o',
                                  stop=('a', '\\n'), n=3, dtype='bfloat16')
  with pytest.raises(flags.Error, match='checkpoint'):
    generate.parse_args(['--prompts=p', '--output=o'])
  with pytest.raises(flags.Error, match='dtype'):
    generate.parse_args(['--checkpoint=c', '--prompts=p', '--output=o',
                         '--dtype=int8'])
  with pytest.raises(flags.Error, match='tempreature'):
    generate.parse_args(['--checkpoint=c', '--prompts=p', '--output=o',
                         '--tempreature=0'])


def test_python_dash_m(bare_dir, tmp_path):
  """`python -m jaxreason.generate` (absl app.run) writes what main() does."""
  rows = [{'prompt_ids': [17, 40, 5]}, {'prompt_ids': [9, 8]}]
  prompts = _write_jsonl(tmp_path / 'in.jsonl', rows)
  args = [f'--checkpoint={bare_dir}', f'--prompts={prompts}',
          '--temperature=0', '--max_new_tokens=4']
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=1',
             PYTHONPATH=os.pathsep.join(
                 [REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
  res = subprocess.run(
      [sys.executable, '-m', 'jaxreason.generate', *args,
       f'--output={tmp_path / "cli.jsonl"}'],
      env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
  assert res.returncode == 0, res.stderr[-3000:]
  in_process = _run(bare_dir, prompts, tmp_path / 'main.jsonl', *args[2:])
  assert _read_jsonl(tmp_path / 'cli.jsonl') == in_process
  # An error is one line naming the fault, with a non-zero exit status.
  bad = subprocess.run(
      [sys.executable, '-m', 'jaxreason.generate', *args,
       f'--output={tmp_path / "x.jsonl"}', '--stop=a'],
      env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
  assert bad.returncode != 0
  assert 'jaxreason.generate: error: --stop needs a tokenizer' in bad.stderr


def test_unescape():
  assert generate.unescape(r'\n\n') == '\n\n'
  assert generate.unescape(r'</answer>\t') == '</answer>\t'
  assert generate.unescape('é中\\\\') == 'é中\\'


def test_chat_template_prompts(hf_dir, tmp_path):
  tok = load_tokenizer(hf_dir)
  rows = [{'prompt': 'hi'},
          {'prompt': [{'role': 'system', 'content': 'Be brief.'},
                      {'role': 'user', 'content': 'hi'}]}]
  prompts = generate.read_prompts(_write_jsonl(tmp_path / 'c.jsonl', rows),
                                  tok, vocab_size=tok.vocab_size, chat=True)
  assert prompts[0].ids == tok.encode(
      '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n')
  assert prompts[1].ids == tok.encode(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>'
      '\n<|im_start|>assistant\n')
  assert prompts[1].where.endswith('c.jsonl:2')


def test_errors_name_the_file_and_line(hf_dir, tmp_path):
  out = str(tmp_path / 'out.jsonl')
  flags = (f'--output={out}', '--max_new_tokens=4')
  bad = _write_jsonl(tmp_path / 'bad.jsonl',
                     [{'prompt': 'ok'}, '{"prompt": "unterminated'])
  with pytest.raises(ValueError, match=r'bad\.jsonl:2: not valid JSON'):
    generate.main([f'--checkpoint={hf_dir}', f'--prompts={bad}', *flags])
  long = _write_jsonl(tmp_path / 'long.jsonl',
                      [{'prompt_ids': [5] * 3}, '', {'prompt_ids': [5] * 12}])
  with pytest.raises(ValueError, match=r'long\.jsonl:3: the prompt has 12 '
                     r'tokens.*--cache_size=10'):
    generate.main([f'--checkpoint={hf_dir}', f'--prompts={long}',
                   '--cache_size=10', *flags])
  tok = CharTokenizer()
  for row, message in (({'text': 'x'}, 'no "prompt" or "prompt_ids"'),
                       ({'prompt': 3}, '"prompt" must be a string'),
                       ({'prompt_ids': [1, 'a']}, 'list of integers'),
                       ({'prompt_ids': [1, 500]}, r'outside .*\[0, 300\)'),
                       ({'prompt_ids': []}, 'empty'), ([1], 'JSON object')):
    path = _write_jsonl(tmp_path / 'one.jsonl', [{'prompt': 'a'}, row])
    with pytest.raises(ValueError, match=f'one.jsonl:2: .*{message}'):
      generate.read_prompts(path, tok, vocab_size=300)
  missing = str(tmp_path / 'nowhere')
  with pytest.raises(FileNotFoundError, match=f'{missing}: no such directory'):
    generate.main([f'--checkpoint={missing}', f'--prompts={bad}', *flags])
  empty = tmp_path / 'empty_dir'
  empty.mkdir()
  with pytest.raises(FileNotFoundError,
                     match=r'empty_dir: neither .*model\.safetensors.*'
                     r'checkpoints/'):
    load_policy(str(empty))


def _assert_loads_onto_mesh(path, params, model_config):
  """With a mesh, each leaf arrives sharded by the rules, values unchanged."""
  mesh = mesh_lib.make_mesh([('data', 1), ('fsdp', 4), ('tensor', 2)])
  _, sharded, _ = load_policy(path, mesh=mesh)
  expected_sh = rules_lib.param_shardings(abstract_params(model_config), mesh)
  flat = jax.tree_util.tree_leaves_with_path(sharded)
  assert flat, 'no parameters'
  split = 0
  for (where, leaf), sh in zip(flat, jax.tree.leaves(expected_sh)):
    assert leaf.sharding.is_equivalent_to(sh, leaf.ndim), (where, leaf.sharding)
    split += len(leaf.sharding.device_set) > 1 and not sh.is_fully_replicated
  assert split, 'no parameter was split over the mesh'
  jax.tree.map(np.testing.assert_array_equal, sharded, params)


def test_sft_workdir(tmp_path):
  from configs.sft import synthetic  # pylint: disable=g-import-not-at-top
  from jaxreason.recipes import sft  # pylint: disable=g-import-not-at-top
  config = synthetic.get_config('debug')
  config.total_steps = 1
  config.eval_max_new_tokens = 0
  workdir = str(tmp_path / 'run')
  sft.train(config, workdir)
  assert os.path.exists(os.path.join(workdir, 'tokenizer',
                                     'tokenizer_char.json'))
  saved = run_config.load_run_config(workdir)
  assert saved.model.to_dict() == config.model.to_dict()

  model_config, params, tokenizer = load_policy(workdir)
  assert isinstance(tokenizer, CharTokenizer)
  assert model_config == run_config.model_config_from(config.model,
                                                tokenizer.vocab_size)
  # Restored onto one device; the trainer's own restore (8-device mesh).
  expected = checkpoint_lib.restore_params(os.path.join(workdir,
                                                        'checkpoints'))
  jax.tree.map(np.testing.assert_array_equal, params, expected)
  _assert_loads_onto_mesh(workdir, params, model_config)
  bf16_config, bf16_params, _ = load_policy(
      os.path.join(workdir, 'checkpoints'), dtype='bfloat16')
  assert bf16_config.dtype == bf16_config.param_dtype == 'bfloat16'
  assert {x.dtype for x in jax.tree.leaves(bf16_params)} == {
      np.dtype('bfloat16')}

  texts = ['Compute 3 + 4.', 'What is 2 * 5?']
  prompts = _write_jsonl(tmp_path / 'in.jsonl', [{'prompt': t} for t in texts])
  out = _run(workdir, prompts, tmp_path / 'out.jsonl', '--temperature=0',
             '--max_new_tokens=6')
  ids = [tokenizer.encode(t, add_bos=True) for t in texts]
  expected = reference.greedy_generate(params, model_config, ids,
                                       max_new_tokens=6,
                                       eos_id=tokenizer.eos_id, batch_size=2)
  assert [o['completion_ids'] for o in out] == expected
  assert [o['prompt'] for o in out] == texts
