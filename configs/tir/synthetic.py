r"""Tool use on the synthetic task: large numbers, a python tool, SFT, TIR eval.

  python experiments/tir.py --config=configs/tir/synthetic.py \
      --workdir=runs/tir
  python experiments/tir.py --config=configs/tir/synthetic.py:debug \
      --workdir=/tmp/tir_debug

Problems are 2-step chains of 2-digit numbers without a modulus ("Start at
68. Multiply by 55, then subtract 97."): answers up to ~10^6 that the
quickstart's 0.31M-parameter character model cannot work out in its head.
The tool model learns to write `print((68*55)-97)`, read the output block
and box it (1200 steps of 16 x 128 packed tokens); the no-tool model (same
size and steps) learns the step-by-step chain. Both are evaluated greedily
on held-out problems (jaxreason/recipes/tir.py; WORKDIR/summary.json).

Variants: '' (the demonstration), 'debug' (a random tiny model, 2 steps,
the tool model only: seconds).
"""

import ml_collections

from jaxreason import config_defaults


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = config_defaults.base()
  c.tokenizer = dict(kind='char')
  c.model = config_defaults.small_model()
  config_defaults.sft_training(c, total_steps=1200)
  c.batch_size = 16
  c.seq_len = 128
  # 1e-3: at 2e-3 the tool model copied operands but not operators (0.105
  # after 1800 steps, benchmarks/tir_synthetic/summary_lr2e-3.json).
  c.optim.update(lr=1e-3, warmup_steps=50)
  c.checkpoint_every = 250
  c.task = dict(num_steps=2, min_operand=10, max_operand=99, modulus=None,
                ops=('+', '-', '*'), word_problem=False)
  c.data = dict(num_train=30_000, num_eval=200, seed=0)
  # 'expression': "Compute (68*55)-97." (the code copies it at a fixed
  # offset); 'words': the task's "Start at 68. Multiply by 55, ...", whose
  # numbers the 0.31M model did not learn to copy in 450 steps.
  c.prompt = 'expression'
  # False: the answer is the program's output (PAL / Qwen TIR without a box);
  # True: the model copies it into \boxed{} (not learned in 450 steps).
  c.boxed = False
  c.train_no_tool = True  # Also train the matched step-by-step model.
  c.eval_only = False  # True: evaluate the workdir's models, train nothing.
  # The python tool (jaxreason.reasoning.tir.ToolConfig).
  c.tools = dict(enabled=True, max_calls=2, timeout_s=5.0, memory_mb=256,
                 max_output_chars=64, workers=4)
  c.eval = dict(max_new_tokens=64, cache_size=192, batch_size=64)

  variants = config_defaults.variants(arg, {'debug'})
  if 'debug' in variants:
    config_defaults.sft_debug(c)
    c.eval_max_new_tokens = 0
    c.data.update(num_train=64, num_eval=4)
    c.eval.update(max_new_tokens=8, batch_size=4)
    c.train_no_tool = False  # One SFT run: seconds.
  return c
