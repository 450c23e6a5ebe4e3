r"""Samples completions of JSONL prompts with the KV-cache sampler (a CLI).

  python -m jaxreason.generate --checkpoint=/ckpt/Qwen2.5-0.5B-Instruct \
      --prompts=in.jsonl --output=out.jsonl --chat \
      --temperature=0.7 --top_p=0.95 --n=4 --max_new_tokens=512 \
      --stop='\n\n' --stop='</answer>'
  python -m jaxreason.generate --checkpoint=runs/sft --prompts=in.jsonl \
      --output=out.jsonl --temperature=0          # a jaxreason workdir, greedy

--checkpoint is a Hugging Face folder or a jaxreason workdir (see
`jaxreason.sampling.policy.load_policy`). A Hugging Face folder without
tokenizer files works too: its prompts are then `prompt_ids`, and the output
has ids and log-probs but no text (--stop and --chat need a tokenizer).

Input: one JSON object per line with `prompt` (text; with --chat a string
is one user message and a list of {role, content} is a conversation,
formatted with the tokenizer's chat template) or `prompt_ids` (token ids,
used as they are; they win if both are present). Text is encoded with the
tokenizer's bos token if it has one, as the SFT recipe trains.

Output: one line per sample (n per prompt, in input order): the input's
fields plus
  completion      (only with a tokenizer) the decoded text of
                  completion_ids, without a final EOS
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

Flags are absl flags, like the experiments'; importing this module defines
none (`define_flags(flag_values)` does, for `python -m` and `parse_args`),
so the library stays free of global flags. `main(argv)` parses into a
private FlagValues and runs in-process (tests, notebooks); `run(Options(...))`
needs no flags at all and returns counts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax

from jaxreason.data.tokenizer import Tokenizer
from jaxreason.sampling.policy import load_policy
from jaxreason.sampling.sampler import Sampler
from jaxreason.train.run_context import quiet_library_logs

OUTPUT_FIELDS = ('completion', 'completion_ids', 'logprobs', 'finish_reason',
                 'sample_index')
CACHE_MULTIPLE = 128


@dataclasses.dataclass(frozen=True)
class Options:
  """What the flags set; `run(Options(...))` works without flags."""

  checkpoint: str
  prompts: str
  output: str
  temperature: float = 1.0
  top_p: float = 1.0
  top_k: int = 0
  min_p: float = 0.0
  n: int = 1
  max_new_tokens: int = 256
  seed: int = 0
  stop: tuple[str, ...] = ()
  cache_size: int = 0
  batch_size: int = 16
  chat: bool = False
  dtype: str | None = None
  tokenizer: str | None = None
  attention_impl: str = 'jnp'


def define_flags(flag_values: flags.FlagValues) -> None:
  """Defines the CLI's flags in `flag_values` (importing defines none)."""
  fv = dict(flag_values=flag_values)
  flags.DEFINE_string('checkpoint', None,
                      'Hugging Face folder or jaxreason workdir.', **fv)
  flags.DEFINE_string('prompts', None, 'Input JSONL file.', **fv)
  flags.DEFINE_string('output', None, 'Output JSONL file.', **fv)
  flags.DEFINE_float('temperature', 1.0, '0 = greedy.', **fv)
  flags.DEFINE_float('top_p', 1.0, 'Nucleus sampling mass.', **fv)
  flags.DEFINE_integer('top_k', 0, '0 = off.', **fv)
  flags.DEFINE_float('min_p', 0.0, '0 = off.', **fv)
  flags.DEFINE_integer('n', 1, 'Samples per prompt.', **fv)
  flags.DEFINE_integer('max_new_tokens', 256, 'Tokens per sample, at most.',
                       **fv)
  flags.DEFINE_integer('seed', 0, 'Sampling seed.', **fv)
  flags.DEFINE_multi_string(
      'stop', [], "Stop string (repeatable); backslash escapes such as "
      "'\\n\\n' are decoded. Needs a tokenizer.", **fv)
  flags.DEFINE_integer('cache_size', 0,
                       'Positions per row; 0: the longest prompt + '
                       f'max_new_tokens, rounded up to {CACHE_MULTIPLE}.',
                       **fv)
  flags.DEFINE_integer('batch_size', 16,
                       'Prompts per sampler call (each with n samples).', **fv)
  flags.DEFINE_bool('chat', False,
                    "Apply the tokenizer's chat template to `prompt`.", **fv)
  flags.DEFINE_enum('dtype', None, ['float32', 'bfloat16'],
                    "Computation, cache and parameter dtype; default: the "
                    "checkpoint's.", **fv)
  flags.DEFINE_string('tokenizer', None,
                      "Tokenizer path, instead of the checkpoint's.", **fv)
  flags.DEFINE_enum('attention_impl', 'jnp', ['jnp', 'pallas'],
                    'Decode attention (pallas: the GPU / TPU kernel).', **fv)
  flags.mark_flags_as_required(['checkpoint', 'prompts', 'output'],
                               flag_values=flag_values)


def options_from_flags(flag_values: flags.FlagValues) -> Options:
  """The parsed flags of `define_flags` as Options."""
  values = {f.name: flag_values[f.name].value
            for f in dataclasses.fields(Options)}
  values['stop'] = tuple(values['stop'] or ())
  return Options(**values)


def parse_args(argv: Sequence[str]) -> Options:
  """Options from command-line arguments (without the program name).

  Uses a private FlagValues, so it can be called any number of times
  in-process (tests, notebooks); flags.Error for a bad or missing flag.
  """
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  rest = flag_values(['generate', *argv])
  if len(rest) > 1:
    raise flags.Error(f'unexpected arguments: {rest[1:]}')
  return options_from_flags(flag_values)


def unescape(text: str) -> str:
  r"""Decodes backslash escapes ('\n', '\t', '\u2028', '\\'); keeps the rest."""
  return text.encode('latin-1', 'backslashreplace').decode('unicode_escape')


@dataclasses.dataclass(frozen=True)
class Prompt:
  """One input line: where it is, its fields and its token ids."""

  where: str  # 'file:line'
  record: dict[str, Any]
  ids: list[int]


def _prompt_ids(record: dict[str, Any], tokenizer: Tokenizer | None,
                chat: bool, vocab_size: int) -> list[int]:
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
    if tokenizer is None:
      raise ValueError('"prompt" is text, and the checkpoint has no tokenizer '
                       '(give --tokenizer, or token ids as "prompt_ids")')
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


def read_prompts(path: str, tokenizer: Tokenizer | None, *, vocab_size: int,
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


def run(args: Options) -> dict[str, Any]:
  """Loads, samples, writes args.output; returns counts and timings."""
  for name in ('n', 'max_new_tokens', 'batch_size'):
    if getattr(args, name) < 1:
      raise ValueError(f'--{name}={getattr(args, name)} must be >= 1')
  stops = [unescape(s) for s in args.stop]
  if not os.path.isfile(args.prompts):  # Before loading a large model.
    raise FileNotFoundError(f'{args.prompts}: prompts file not found')
  config, params, tokenizer = load_policy(args.checkpoint, dtype=args.dtype,
                                          tokenizer=args.tokenizer,
                                          require_tokenizer=False)
  if tokenizer is None:
    logging.warning('%s has no tokenizer: prompts must be "prompt_ids", and '
                    'the output has ids and log-probs but no text',
                    args.checkpoint)
    for name, value in (('stop', stops), ('chat', args.chat)):
      if value:
        raise ValueError(f'--{name} needs a tokenizer; {args.checkpoint} has '
                         'none (give --tokenizer)')
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
          text = {} if tokenizer is None else {'completion': c.text}
          line = {**prompt.record, **text, 'completion_ids': c.tokens,
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


def main(argv: Sequence[str]) -> int:
  """Parses argv (flags, without the program name) and runs in-process.

  Errors propagate (flags.Error for bad flags).
  """
  args = parse_args(argv)
  logging.set_verbosity(logging.INFO)
  quiet_library_logs()  # Orbax's INFO lines.
  run(args)
  return 0


def _app_main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.INFO)
  quiet_library_logs()  # Orbax's INFO lines.
  try:
    run(options_from_flags(flags.FLAGS))
  except (ValueError, FileNotFoundError) as error:
    sys.exit(f'jaxreason.generate: error: {error}')


if __name__ == '__main__':
  define_flags(flags.FLAGS)
  app.run(_app_main)
