r"""Samples completions of JSONL prompts with the KV-cache sampler (a CLI).

  python -m jaxreason.generate --checkpoint=/ckpt/Qwen2.5-0.5B-Instruct \
      --prompts=in.jsonl --output=out.jsonl --chat \
      --temperature=0.7 --top_p=0.95 --n=4 --max_new_tokens=512 \
      --stop='\n\n' --stop='</answer>'
  python -m jaxreason.generate --checkpoint=runs/sft --prompts=in.jsonl \
      --output=out.jsonl --temperature=0          # a jaxreason workdir, greedy

--checkpoint is a Hugging Face folder or a jaxreason workdir (see
`jaxreason.sampling.policy.load_policy`).

Input: one JSON object per line with `prompt` (text; with --chat a string
is one user message and a list of {role, content} is a conversation,
formatted with the tokenizer's chat template) or `prompt_ids` (token ids,
used as they are; they win if both are present). Text is encoded with the
tokenizer's bos token if it has one, as the SFT recipe trains.

Output: one line per sample (n per prompt, in input order): the input's
fields plus
  completion      the decoded text of completion_ids, without a final EOS
                  token; a matched stop string is kept (with whatever the
                  token that completed it adds after it), so cut at
                  `completion.rfind(stop)` to drop it,
  completion_ids  the generated ids (a final EOS included),
  logprobs        log_softmax(logits / temperature) of each generated id
                  (temperature 1 when greedy): the policy's log-probs before
                  top-p / top-k / min-p truncation,
  finish_reason   'eos' | 'stop' (a --stop string) | 'length'
                  (--max_new_tokens, or the cache is full),
  sample_index    0 .. n-1.
Samples are determined by (--seed, --batch_size): batch i uses the key
fold_in(key(seed), index of its first prompt).

Errors name what is at fault: file:line for a malformed line or a prompt that
does not fit the cache (with both lengths), the path and the files looked for
for a missing checkpoint.

`main(argv)` runs in-process (tests, notebooks); `run(args)` takes parsed
arguments and returns counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, Sequence

from absl import logging
import jax

from jaxreason.data.tokenizer import Tokenizer
from jaxreason.sampling.policy import load_policy
from jaxreason.sampling.sampler import Sampler
from jaxreason.train.run_context import quiet_library_logs

OUTPUT_FIELDS = ('completion', 'completion_ids', 'logprobs', 'finish_reason',
                 'sample_index')
CACHE_MULTIPLE = 128


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m jaxreason.generate',
      description='Sample completions of JSONL prompts (see the module '
                  'docstring of jaxreason/generate.py for the formats).')
  p.add_argument('--checkpoint', required=True,
                 help='Hugging Face folder or jaxreason workdir.')
  p.add_argument('--prompts', required=True, help='Input JSONL file.')
  p.add_argument('--output', required=True, help='Output JSONL file.')
  p.add_argument('--temperature', type=float, default=1.0,
                 help='0 = greedy.')
  p.add_argument('--top_p', type=float, default=1.0)
  p.add_argument('--top_k', type=int, default=0, help='0 = off.')
  p.add_argument('--min_p', type=float, default=0.0, help='0 = off.')
  p.add_argument('--n', type=int, default=1, help='Samples per prompt.')
  p.add_argument('--max_new_tokens', type=int, default=256)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--stop', action='append', default=[],
                 help="Stop string (repeatable); backslash escapes such as "
                      "'\\n\\n' are decoded.")
  p.add_argument('--cache_size', type=int, default=0,
                 help='Positions per row; 0: the longest prompt + '
                      f'max_new_tokens, rounded up to {CACHE_MULTIPLE}.')
  p.add_argument('--batch_size', type=int, default=16,
                 help='Prompts per sampler call (each with n samples).')
  p.add_argument('--chat', action=argparse.BooleanOptionalAction,
                 default=False,
                 help="Apply the tokenizer's chat template to `prompt`.")
  p.add_argument('--dtype', choices=('float32', 'bfloat16'), default=None,
                 help='Computation, cache and parameter dtype; default: the '
                      "checkpoint's.")
  p.add_argument('--tokenizer', default=None,
                 help='Tokenizer path, instead of the checkpoint\'s.')
  p.add_argument('--attention_impl', choices=('jnp', 'pallas'), default='jnp',
                 help='Decode attention (pallas: the GPU / TPU kernel).')
  return p


def unescape(text: str) -> str:
  r"""Decodes backslash escapes ('\n', '\t', '\u2028', '\\'); keeps the rest."""
  return text.encode('latin-1', 'backslashreplace').decode('unicode_escape')


@dataclasses.dataclass(frozen=True)
class Prompt:
  """One input line: where it is, its fields and its token ids."""

  where: str  # 'file:line'
  record: dict[str, Any]
  ids: list[int]


def _prompt_ids(record: dict[str, Any], tokenizer: Tokenizer, chat: bool,
                vocab_size: int) -> list[int]:
  """The line's token ids; ValueError (without the location) if malformed."""
  if 'prompt_ids' in record:
    ids = record['prompt_ids']
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ids):
      raise ValueError('"prompt_ids" must be a list of integers')
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
      raise ValueError(f'"prompt_ids" has ids {bad[:5]} outside the model\'s '
                       f'vocabulary [0, {vocab_size})')
  elif 'prompt' in record:
    prompt = record['prompt']
    if chat and isinstance(prompt, str):
      prompt = [{'role': 'user', 'content': prompt}]
    if chat and isinstance(prompt, list):
      text = tokenizer.apply_chat_template(prompt)
    elif isinstance(prompt, str):
      text = prompt
    else:
      raise ValueError('"prompt" must be a string (or, with --chat, a list of '
                       f'messages), got {type(prompt).__name__}')
    ids = tokenizer.encode(text, add_bos=tokenizer.bos_id is not None)
  else:
    raise ValueError(f'no "prompt" or "prompt_ids" field (fields: '
                     f'{sorted(record)})')
  if not ids:
    raise ValueError('the prompt is empty')
  return ids


def read_prompts(path: str, tokenizer: Tokenizer, *, vocab_size: int,
                 chat: bool = False) -> list[Prompt]:
  """Parses and tokenizes each line (blank ones skipped); errors: file:line."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path}: prompts file not found')
  prompts = []
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      where = f'{path}:{number}'
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f'{where}: not valid JSON ({e})') from e
      if not isinstance(record, dict):
        raise ValueError(f'{where}: expected a JSON object, got '
                         f'{type(record).__name__}')
      try:
        ids = _prompt_ids(record, tokenizer, chat, vocab_size)
      except ValueError as e:
        raise ValueError(f'{where}: {e}') from e
      prompts.append(Prompt(where, record, ids))
  if not prompts:
    raise ValueError(f'{path}: no prompts')
  return prompts


def default_cache_size(prompts: Sequence[Prompt], max_new_tokens: int) -> int:
  longest = max(len(p.ids) for p in prompts)
  return -(-(longest + max_new_tokens) // CACHE_MULTIPLE) * CACHE_MULTIPLE


def check_fits(prompts: Sequence[Prompt], cache_size: int) -> None:
  """A prompt needs at least one free cache position to generate into."""
  for p in prompts:
    if len(p.ids) >= cache_size:
      raise ValueError(
          f'{p.where}: the prompt has {len(p.ids)} tokens, which does not fit '
          f'--cache_size={cache_size} (it needs more than {len(p.ids)})')


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Loads, samples, writes args.output; returns counts and timings."""
  for name in ('n', 'max_new_tokens', 'batch_size'):
    if getattr(args, name) < 1:
      raise ValueError(f'--{name}={getattr(args, name)} must be >= 1')
  stops = [unescape(s) for s in args.stop]
  if not os.path.isfile(args.prompts):  # Before loading a large model.
    raise FileNotFoundError(f'{args.prompts}: prompts file not found')
  config, params, tokenizer = load_policy(args.checkpoint, dtype=args.dtype,
                                          tokenizer=args.tokenizer)
  prompts = read_prompts(args.prompts, tokenizer, vocab_size=config.vocab_size,
                         chat=args.chat)
  cache_size = args.cache_size or default_cache_size(prompts,
                                                     args.max_new_tokens)
  check_fits(prompts, cache_size)
  if cache_size > config.max_position_embeddings:
    logging.warning('cache_size=%d exceeds the model\'s '
                    'max_position_embeddings=%d', cache_size,
                    config.max_position_embeddings)
  sampler = Sampler(config, cache_size=cache_size, tokenizer=tokenizer,
                    stop_strings=stops, attention_impl=args.attention_impl)
  overwritten = sorted({k for p in prompts for k in p.record
                        if k in OUTPUT_FIELDS})
  if overwritten:
    logging.warning('input fields %s are replaced in the output', overwritten)
  logging.info('%d prompts x %d samples, cache_size=%d, stop=%r',
               len(prompts), args.n, sampler.cache_size, stops)

  rng = jax.random.key(args.seed)
  start_time = time.perf_counter()
  num_tokens = num_samples = 0
  out_dir = os.path.dirname(os.path.abspath(args.output))
  os.makedirs(out_dir, exist_ok=True)
  with open(args.output, 'w', encoding='utf-8') as out:
    for start in range(0, len(prompts), args.batch_size):
      batch = prompts[start:start + args.batch_size]
      results = sampler.generate(
          params, [p.ids for p in batch], max_new_tokens=args.max_new_tokens,
          n=args.n, rng=jax.random.fold_in(rng, start),
          temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
          min_p=args.min_p)
      for prompt, completions in zip(batch, results):
        for index, c in enumerate(completions):
          line = {**prompt.record, 'completion': c.text,
                  'completion_ids': c.tokens,
                  'logprobs': [float(x) for x in c.logprobs],
                  'finish_reason': c.finish_reason, 'sample_index': index}
          out.write(json.dumps(line, ensure_ascii=False) + '\n')
          num_tokens += len(c.tokens)
          num_samples += 1
      out.flush()
      elapsed = time.perf_counter() - start_time
      logging.info('prompts %d / %d, %d tokens, %.1f generated tokens/s',
                   start + len(batch), len(prompts), num_tokens,
                   num_tokens / max(elapsed, 1e-9))
  elapsed = time.perf_counter() - start_time
  logging.info('Wrote %d samples to %s (%.1fs, %.1f tokens/s incl. '
               'compilation)', num_samples, args.output, elapsed,
               num_tokens / max(elapsed, 1e-9))
  return {'num_prompts': len(prompts), 'num_samples': num_samples,
          'num_tokens': num_tokens, 'seconds': elapsed,
          'cache_size': sampler.cache_size}


def main(argv: Sequence[str] | None = None) -> int:
  """Parses argv (default sys.argv[1:]) and runs; errors propagate."""
  args = build_parser().parse_args(argv)
  logging.set_verbosity(logging.INFO)
  quiet_library_logs()  # Orbax's INFO lines.
  run(args)
  return 0


if __name__ == '__main__':
  try:
    sys.exit(main())
  except (ValueError, FileNotFoundError) as error:
    sys.exit(f'jaxreason.generate: error: {error}')
