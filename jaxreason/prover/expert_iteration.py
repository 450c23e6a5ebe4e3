"""Expert iteration: rejection-sample, verify, keep what the checker proves.

One round of SubgoalXL's loop on one set of problems:

  chains  = gens.sample_chains(params, informal, n=k, rng=...)   # k each
  rewards = gens.partner_scores(params, chains)                   # [k] each
  result  = select_and_verify(informal, chains, rewards, num_keep=2,
                              beta=0.5, rng=np_rng, check_fn=check_proof)
  data    = merge_pairs(seed_pairs, result.verified)   # then retrain

`rejection_sample` is the statistical rejection sampling of RSO (Liu et al.
2023, "Statistical Rejection Sampling Improves Preference Optimization",
Algorithm 1) as SubgoalXL uses it: candidates are visited in order, each
accepted when u < exp((r - r_max) / beta) with u ~ U(0, 1) and r_max the
best reward still in the pool; accepted ones leave the pool; passes repeat
until num_samples are accepted. The reference loops forever / fails on
`max()` of an empty pool when num_samples exceeds the candidates; here it
returns every candidate instead.

The checker is passed in (`check_fn`, with `jaxreason.prover.check_proof`'s
signature), so the loop is testable without z3 and another backend plugs in.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from absl import logging
import numpy as np

from jaxreason.prover import synthetic
from jaxreason.prover.generators import Chain

CheckFn = Callable[..., Any]  # check_proof(variables, hyps, goal, steps, *, timeout_s)


def rejection_sample(rewards: Sequence[float], num_samples: int, beta: float,
                     rng: np.random.Generator) -> list[int]:
  """Indices of the accepted candidates, in the order they were accepted.

  One u = rng.uniform() is drawn per candidate visit, in index order within
  each pass, stopping as soon as num_samples are accepted. Asking for at
  least len(rewards) samples returns every index (no crash, no endless
  loop). The best remaining candidate is always accepted (u < exp(0) = 1),
  so every pass accepts at least one.
  """
  if beta <= 0:
    raise ValueError(f'beta={beta} must be positive')
  if num_samples < 0:
    raise ValueError(f'num_samples={num_samples} must be >= 0')
  rewards = [float(r) for r in rewards]
  if any(not np.isfinite(r) for r in rewards):
    raise ValueError(f'rewards must be finite, got {rewards}')
  pool = list(range(len(rewards)))
  accepted: list[int] = []
  while len(accepted) < num_samples and pool:
    r_max = max(rewards[i] for i in pool)
    taken = []
    for i in pool:
      u = rng.uniform()
      if u >= np.exp((rewards[i] - r_max) / beta):
        continue
      accepted.append(i)
      taken.append(i)
      if len(accepted) == num_samples:
        break
    pool = [i for i in pool if i not in taken]
  return accepted


@dataclasses.dataclass(frozen=True)
class Verdict:
  proved: bool
  called: bool  # False: the chain did not parse, the checker was not asked.
  reason: str


def verify(chain: Chain, check_fn: CheckFn, *, timeout_s: float) -> Verdict:
  """Parses a generated chain's formal statement and proof, then checks it.

  Malformed text is unproved without a checker call. Any error the checker
  raises on generated expressions (bad syntax, unknown names) is unproved
  with its message as the reason: a generated proof must never stop the
  loop.
  """
  try:
    variables, hyps, goal = synthetic.parse_formal(chain.formal)
    steps = synthetic.parse_steps(chain.proof)
  except ValueError as e:
    return Verdict(False, False, f'parse: {e}')
  try:
    report = check_fn(variables, hyps, goal, steps, timeout_s=timeout_s)
  except Exception as e:  # pylint: disable=broad-except
    return Verdict(False, True, f'checker error: {type(e).__name__}: {e}')
  return Verdict(bool(report.proved), True, str(report.reason))


@dataclasses.dataclass(frozen=True)
class RoundResult:
  verified: list[tuple[str, Chain]]  # (informal, chain) the checker proved.
  checker_calls: int
  kept: int  # Candidates rejection sampling kept (= verification attempts).
  proved_problems: int  # Problems with at least one verified chain.
  num_problems: int

  @property
  def proved_share(self) -> float:
    return self.proved_problems / max(self.num_problems, 1)


def select_and_verify(informal: Sequence[str],
                      chains: Sequence[Sequence[Chain]],
                      rewards: Sequence[Sequence[float]], *, num_keep: int,
                      beta: float, rng: np.random.Generator,
                      check_fn: CheckFn, timeout_s: float = 5.0
                      ) -> RoundResult:
  """Per problem: rejection-sample num_keep chains, verify them, keep proved."""
  if not len(informal) == len(chains) == len(rewards):
    raise ValueError(f'{len(informal)} problems, {len(chains)} chain lists, '
                     f'{len(rewards)} reward lists')
  verified, calls, kept, proved = [], 0, 0, 0
  for text, cands, rs in zip(informal, chains, rewards):
    if len(cands) != len(rs):
      raise ValueError(f'{len(cands)} chains but {len(rs)} rewards for '
                       f'{text!r}')
    ok = False
    for i in rejection_sample(rs, num_keep, beta, rng):
      kept += 1
      v = verify(cands[i], check_fn, timeout_s=timeout_s)
      calls += v.called
      if v.proved:
        ok = True
        verified.append((text, cands[i]))
    proved += ok
  logging.info('expert iteration: %d / %d problems proved, %d checker calls',
               proved, len(informal), calls)
  return RoundResult(verified, calls, kept, proved, len(informal))


def merge_pairs(seed: Sequence[tuple[str, Chain]],
                verified: Sequence[tuple[str, Chain]]
                ) -> list[tuple[str, Chain]]:
  """Seed pairs, then verified ones not already there (first occurrence)."""
  seen, out = set(), []
  for pair in list(seed) + list(verified):
    if pair not in seen:
      seen.add(pair)
      out.append(pair)
  return out
