"""pass@1 / pass@k of a policy on records with known answers, with the sampler."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import jax
import numpy as np

from jaxreason.data.tokenizer import Tokenizer
from jaxreason.models.transformer import TransformerConfig
from jaxreason.sampling import Sampler

CheckFn = Callable[[str, Mapping[str, Any]], bool]


def pass_at_k_estimate(n: int, c: int, k: int) -> float:
  """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
  if n - c < k:
    return 1.0
  return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def wilson_interval(successes: float, n: int, z: float = 1.96
                    ) -> tuple[float, float]:
  """95% Wilson score interval for a binomial proportion."""
  if n == 0:
    return 0.0, 1.0
  p = successes / n
  denom = 1 + z * z / n
  centre = (p + z * z / (2 * n)) / denom
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
  return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(params: Any, config: TransformerConfig, tokenizer: Tokenizer,
             records: Sequence[Mapping[str, Any]], is_correct: CheckFn, *,
             max_new_tokens: int, n: int = 1, temperature: float = 0.0,
             top_p: float = 1.0, batch_size: int = 64, seed: int = 0,
             stop_strings: Sequence[str] = (), ks: Sequence[int] = (1,),
             num_samples_shown: int = 5) -> dict[str, Any]:
  """Samples n completions per record's 'prompt' and grades them.

  Returns pass@k for each k <= n (unbiased estimator), the 95% Wilson interval
  of pass@1 over problems, per-problem correct counts and a few samples.
  """
  prompts = [tokenizer.encode(r['prompt'],
                              add_bos=tokenizer.bos_id is not None)
             for r in records]
  longest = max(len(p) for p in prompts)
  sampler = Sampler(config, cache_size=longest + max_new_tokens,
                    tokenizer=tokenizer, stop_strings=stop_strings)
  rng = jax.random.key(seed)
  counts, shown = [], []
  for start in range(0, len(records), batch_size):
    chunk = prompts[start:start + batch_size]
    outs = sampler.generate(params, chunk, max_new_tokens=max_new_tokens, n=n,
                            rng=jax.random.fold_in(rng, start),
                            temperature=temperature, top_p=top_p)
    for rec, samples in zip(records[start:start + batch_size], outs):
      texts = [tokenizer.decode(s.tokens, skip_special_tokens=True)
               for s in samples]
      ok = [bool(is_correct(t, rec)) for t in texts]
      counts.append(sum(ok))
      if len(shown) < num_samples_shown:
        shown.append({'prompt': rec['prompt'], 'completion': texts[0],
                      'answer': rec.get('answer'), 'correct': ok[0]})
    logging.info('evaluated %d / %d problems', len(counts), len(records))
  counts_arr = np.asarray(counts)
  result = {'num_problems': len(records), 'n': n, 'correct_counts': counts,
            'samples': shown}
  for k in ks:
    if k <= n:
      result[f'pass@{k}'] = float(np.mean(
          [pass_at_k_estimate(n, int(c), k) for c in counts_arr]))
  result['accuracy'] = result['pass@1']
  result['ci95'] = list(wilson_interval(float(counts_arr.sum()) / n,
                                        len(records)))
  return result
