"""Building blocks shared by the files in configs/ (configs stay data).

  c = config_defaults.base()           # seed, mesh, sharding rules
  c.data = config_defaults.synthetic_data(num_train=50_000)
  c.model = config_defaults.small_model()
"""

from __future__ import annotations

import ml_collections


def variants(arg: str, allowed) -> list[str]:
  """The comma-separated variants of `get_config(arg)`, each one `allowed`.

  Raises a ValueError naming the unknown ones and the allowed set.
  """
  names = [v for v in arg.split(',') if v] if arg else []
  unknown = sorted(set(names) - set(allowed))
  if unknown:
    raise ValueError(f'Unknown variant(s) {unknown} in {arg!r}: expected '
                     f'some of {sorted(allowed)} (comma-separated)')
  return names


def base(seed: int = 0) -> ml_collections.ConfigDict:
  """seed, mesh (data x fsdp x tensor, fsdp takes the rest) and rule overrides."""
  c = ml_collections.ConfigDict()
  c.seed = seed
  c.mesh = (('data', 1), ('fsdp', -1), ('tensor', 1))
  c.sharding_rules = ()  # ((logical_name, mesh_axes), ...) overrides.
  return c


def synthetic_task() -> dict:
  """4-step mod-10 chains with + - * in the bare form (the CPU demo task)."""
  return dict(num_steps=4, min_operand=1, max_operand=9, modulus=10,
              ops=('+', '-', '*'), word_problem=False)


def synthetic_data(num_train: int, num_eval: int = 256, **extra) -> dict:
  return dict(source='synthetic', task=synthetic_task(), num_train=num_train,
              num_eval=num_eval, seed=0, **extra)


def small_model() -> dict:
  """The 0.31M-parameter model of the quickstart (vocab from the tokenizer)."""
  return dict(vocab_size=0, num_layers=3, embed_dim=96, mlp_dim=256,
              num_heads=4, num_kv_heads=2, qkv_bias=True,
              tie_embeddings=True, rope_theta=10000.0,
              max_position_embeddings=512)


def tiny_model() -> dict:
  """A random policy for ':debug' runs."""
  return dict(vocab_size=0, num_layers=1, embed_dim=32, mlp_dim=64,
              num_heads=4, num_kv_heads=2, qkv_bias=True,
              tie_embeddings=True)


def sft_training(c: ml_collections.ConfigDict, total_steps: int = 800) -> None:
  """Sequence packing, AdamW warmup-cosine and logging of the SFT configs."""
  c.seq_len = 256
  c.batch_size = 32
  c.pack = True
  c.grad_accum_steps = 1
  c.total_steps = ml_collections.FieldReference(total_steps)
  c.optim = dict(name='adamw', lr=3e-3, schedule='warmup_cosine',
                 warmup_steps=100, end_lr_ratio=0.05, b1=0.9, b2=0.98,
                 weight_decay=0.01, clip_norm=1.0)
  c.optim.total_steps = c.get_ref('total_steps')
  c.checkpoint_every = 200
  c.log_every = 50
  c.eval_max_new_tokens = 80
  c.init_checkpoint = ''  # A Hugging Face folder to start from.
  # chunk_size > 0: cross-entropy from the hidden states, chunk_size positions
  # at a time (float32 [B, T, vocab] logits never exist at once); 0: plain.
  c.loss = dict(chunk_size=0)


def sft_debug(c: ml_collections.ConfigDict) -> None:
  """Shrinks an SFT config to a run of seconds."""
  c.data.num_eval = 4
  c.model.update(num_layers=1, embed_dim=32, mlp_dim=64)
  c.seq_len = 128
  c.batch_size = 8
  c.total_steps = 2
  c.optim.warmup_steps = 1
  c.checkpoint_every = 1
  c.log_every = 1
  c.eval_max_new_tokens = 4


def policy_source(c: ml_collections.ConfigDict) -> None:
  """`policy` (SFT workdir / HF folder) or, when empty, a random tiny model."""
  c.policy = ''
  c.tokenizer = dict(kind='char')
  c.model = tiny_model()


# --- Test-time search (configs/search_eval/) --------------------------------

SEARCH_VARIANTS = ('predicted', 'lookahead', 'debug')


def search_eval(source: str, arg: str) -> ml_collections.ConfigDict:
  """Fields of the configs/search_eval files (see recipes/search_eval.py).

  `source`: 'synthetic' (held-out synthetic problems, the oracle step
  checker by default) or a benchmark of `jaxreason.evals.benchmarks`
  (the chat prompt and grader of math_eval; no oracle: verifier 'none' with
  greedy and majority by default; add a learned verifier with
  verifier.kind='prm' / 'thinkprm' and its path, and the methods that use
  it). Variants: 'predicted', 'lookahead', 'debug' (comma-separated).
  """
  c = base()
  policy_source(c)  # SFT workdir / HF folder, or random.
  c.data = synthetic_data(num_train=0, num_eval=200, data_dir='',
                          skip_malformed=False)
  c.data.source = source
  c.verifier = dict(kind='oracle', path='', batch_size=16, num_chains=1,
                    max_chain_tokens=256, cache_size=1024)
  c.methods = ('greedy', 'majority', 'best_of_n', 'weighted_best_of_n',
               'beam_search', 'dvts')
  c.ns = (1, 2, 4, 8, 16)
  # Step-score aggregation per method (last | min | prod | mean).
  c.aggregation = dict(best_of_n='last', weighted_best_of_n='last',
                       beam_search='last', dvts='last')
  c.beam = dict(width=4, lookahead=0, max_iterations=20, dedupe=True)
  c.dvts = dict(width=4, max_iterations=20)
  c.temperature = 1.0
  c.top_p = 1.0
  c.max_new_tokens = 80  # Per candidate (a 4-step solution is ~40 tokens).
  c.max_step_tokens = 24
  c.batch_problems = 50  # Problems searched together (rows: this x N).
  c.compute_optimal = dict(difficulty='oracle', samples=4, num_bins=4)
  c.save_candidates = False
  # Benchmarks only (the synthetic task has its own prompt and exact match).
  c.prompt = dict(chat=True, system=QWEN_MATH_SYSTEM, user='{problem}',
                  raw='{problem}\n')
  c.grading = dict(extract='robust', match='grader')
  c.unencodable = 'error'  # Or 'skip' (logged) a prompt the tokenizer can't.
  if source != 'synthetic':
    c.data.num_eval = 0  # All problems.
    c.verifier.kind = 'none'
    c.methods = ('greedy', 'majority')
    c.temperature = 0.6
    c.top_p = 0.95
    c.max_new_tokens = 2048
    c.max_step_tokens = 512
    c.beam.max_iterations = 40
    c.dvts.max_iterations = 40
    c.batch_problems = 4
    c.compute_optimal.difficulty = 'predicted'

  variants_ = variants(arg, SEARCH_VARIANTS)
  if 'predicted' in variants_:
    c.compute_optimal.difficulty = 'predicted'
  if 'lookahead' in variants_:
    c.beam.lookahead = 1
  if 'debug' in variants_:
    c.policy = ''
    c.data.num_eval = 4  # 4 x N <= 8 rows: one compiled decode loop.
    c.ns = (1, 2)
    c.max_new_tokens = 12
    c.max_step_tokens = 6
    c.beam.max_iterations = 3
    c.dvts.max_iterations = 3
    c.compute_optimal.num_bins = 2
    c.compute_optimal.samples = 2
    c.save_candidates = True
    c.unencodable = 'skip'
  return c


# --- World-model imitation (configs/aime/) ----------------------------------

AIME_TASKS = ('walker-stand', 'finger-spin', 'cheetah-run')


def aime_base(arg: str) -> tuple[ml_collections.ConfigDict, list[str]]:
  """Task, environment, data and logging fields of every configs/aime file.

  `arg` is 'TASK[,variant...]' (e.g. 'finger-spin,debug'); a first item that
  is not a task name keeps the default walker-stand. Returns the config and
  the remaining variants.
  """
  parts = [p for p in arg.split(',') if p] if arg else []
  c = base()
  c.mesh = (('data', -1), ('fsdp', 1), ('tensor', 1))  # Batch-parallel.
  c.task = 'walker-stand'
  if parts and '-' in parts[0]:
    c.task = parts.pop(0)
  c.action_repeat = 2
  c.max_episode_steps = 0  # 0: the task's limit (1000 / action_repeat).
  c.data_dir = ''  # The expert stage's workdir/data ('' in :debug only).
  c.eval_episodes = 5
  c.checkpoint_every = 1
  c.log_every = 1
  return c, parts


def aime_debug(c: ml_collections.ConfigDict) -> None:
  """Seconds on a CPU: 20-step episodes, random stand-in data."""
  c.max_episode_steps = 20
  c.data_dir = ''
  c.eval_episodes = 1


def aime_world_model(c: ml_collections.ConfigDict) -> None:
  """World-model sizes and ELBO settings shared by pretrain, aime, aime_v2.

  Sized for a CPU (tools/bench_world_model.py): about a third of Dreamer's
  200-unit RSSM; symlog inputs and symlog-MSE decoding for state vectors.
  """
  c.world_model = dict(
      rssm=dict(deter_dim=128, stoch_dim=16, hidden_dim=128),
      embed_dim=128, mlp_hidden=128, mlp_layers=2, head_hidden=128,
      head_layers=2, recon='symlog_mse', symlog_inputs=True)
  c.free_nats = 1.0
  c.kl_balance = 0.8
  c.batch_size = 16
  c.seq_len = 32
  c.wm_lr = 6e-4


def aime_world_model_debug(c: ml_collections.ConfigDict) -> None:
  c.world_model.rssm.update(deter_dim=16, stoch_dim=4, hidden_dim=16)
  c.world_model.update(embed_dim=16, mlp_hidden=16, mlp_layers=1,
                       head_hidden=16, head_layers=1)
  c.batch_size = 8
  c.seq_len = 8


# --- Math evaluation (configs/math_eval/) -----------------------------------

QWEN_MATH_SYSTEM = ('Please reason step by step, and put your final answer '
                    'within \\boxed{}.')


def math_eval(benchmark: str, arg: str) -> ml_collections.ConfigDict:
  """Fields of every configs/math_eval file (see jaxreason/evals/math_eval.py).

  `benchmark` is a name of `jaxreason.evals.benchmarks` or 'synthetic'.
  `arg` '' or 'debug': a random tiny model, 3 problems, 4 samples of 8
  tokens (the benchmark files are still read, so the readers and prompts
  run end to end; problems the character tokenizer cannot encode are
  skipped).
  """
  if arg not in ('', 'debug'):
    raise ValueError(f'Unknown variant {arg!r}: expected "" or "debug"')
  c = base()
  policy_source(c)  # HF folder / jaxreason workdir, or a random tiny model.
  c.dtype = ''  # '' keeps the checkpoint's; or 'bfloat16', ...
  c.benchmark = benchmark
  c.data_dir = ''  # '' -> $JAXREASON_DATA, else ../shared/data.
  c.skip_malformed = False
  c.num_problems = 0  # 0: all.
  c.n = 16  # Samples per problem (one prefilled prompt each).
  c.max_new_tokens = 2048
  c.temperature = 0.6
  c.top_p = 0.95
  c.batch_prompts = 8  # Prompts per generate call (x n rows).
  c.stop_strings = ()
  c.prompt = dict(chat=True, system=QWEN_MATH_SYSTEM, user='{problem}',
                  raw='{problem}\n')
  c.grading = dict(extract='robust', match='grader', grade_truncated=True)
  c.unencodable = 'error'  # Or 'skip' (logged) a prompt the tokenizer can't.
  c.save_completions = True
  if arg == 'debug':
    c.policy = ''
    c.num_problems = 3
    c.n = 4
    c.max_new_tokens = 8
    c.batch_prompts = 2
    c.unencodable = 'skip'
  return c
