"""Math-Shepherd step labels: is a solution prefix still on a road to the answer?

For each prefix (steps 0..i) of a solution, `n` completions are sampled
from a policy and graded by the task's reward; the prefix's labels are

  hard: 1 if any completion reaches the right answer, else 0;
  soft: the share of completions that do.

All `n` samples of a prefix share one prefill of it (`Sampler.generate`
prefills each prompt once and copies its KV cache into n rows), and the
prefixes of a batch of solutions are sampled together. A prefix that
already holds the final answer (its last step has a `\\boxed{}`) is graded
as it is, without sampling.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from jaxreason.data.step_labels import SEPARATOR, StepExample
from jaxreason.data.synthetic import extract_boxed
from jaxreason.data.tokenizer import Tokenizer
from jaxreason.models.transformer import TransformerConfig
from jaxreason.rewards.task_rewards import RewardFn
from jaxreason.sampling.sampler import Sampler


@dataclasses.dataclass(frozen=True)
class RolloutLabels:
  """Per-step labels of one solution; hard and soft are [num_steps]."""
  hard: tuple[float, ...]
  soft: tuple[float, ...]
  samples: int  # Completions sampled for this solution (all prefixes).


def prefix_text(steps: Sequence[str], k: int) -> str:
  """Steps 0..k-1 as solution text, ending with the separator."""
  return SEPARATOR.join(steps[:k]) + SEPARATOR


def rollout_labels(params: Any, model_cfg: TransformerConfig,
                   tokenizer: Tokenizer, questions: Sequence[str],
                   steps: Sequence[Sequence[str]],
                   records: Sequence[Mapping[str, Any]], reward_fn: RewardFn,
                   *, n: int, max_new_tokens: int, temperature: float = 1.0,
                   seed: int = 0, correct_threshold: float = 1.0,
                   batch_prompts: int = 32, cache_size: int = 512
                   ) -> list[RolloutLabels]:
  """Math-Shepherd labels of each solution (module docstring).

  questions[i] is the prompt text without its final newline (the policy is
  prompted with question + '\\n', the synthetic task's `format_prompt`);
  records[i] is what `reward_fn` grades against (e.g. {'answer', 'problem'}).
  """
  sampler = Sampler(model_cfg, cache_size=cache_size, tokenizer=tokenizer)
  add_bos = tokenizer.bos_id is not None
  # (solution, step) of every prefix that needs sampling.
  jobs, hard, soft = [], [], []
  for i, st in enumerate(steps):
    hard.append([np.nan] * len(st))
    soft.append([np.nan] * len(st))
    for k in range(len(st)):
      if extract_boxed(st[k]) is not None:  # A final answer: grade it.
        text = SEPARATOR.join(st[:k + 1])
        ok = float(reward_fn([text], [records[i]])[0] >= correct_threshold)
        hard[i][k] = soft[i][k] = ok
      else:
        jobs.append((i, k))
  counts = np.zeros(len(steps), np.int64)
  for b in range(0, len(jobs), batch_prompts):
    batch = jobs[b:b + batch_prompts]
    prompts = [tokenizer.encode(questions[i] + '\n' +
                                prefix_text(steps[i], k + 1), add_bos=add_bos)
               for i, k in batch]
    outs = sampler.generate(params, prompts, max_new_tokens=max_new_tokens,
                            n=n, rng=seed + b, temperature=temperature)
    for (i, k), comps in zip(batch, outs):
      texts = [prefix_text(steps[i], k + 1) + c.text for c in comps]
      ok = reward_fn(texts, [records[i]] * n) >= correct_threshold
      hard[i][k] = float(ok.any())
      soft[i][k] = float(ok.mean())
      counts[i] += n
  return [RolloutLabels(tuple(h), tuple(s), int(c))
          for h, s, c in zip(hard, soft, counts)]


def with_rollout_labels(examples: Sequence[StepExample],
                        labels: Sequence[RolloutLabels],
                        kind: str = 'hard') -> list[StepExample]:
  """The examples with their labels replaced by 'hard' or 'soft' ones."""
  if kind not in ('hard', 'soft'):
    raise ValueError(f"kind={kind!r}: expected 'hard' or 'soft'")
  return [dataclasses.replace(e, labels=getattr(l, kind))
          for e, l in zip(examples, labels)]
