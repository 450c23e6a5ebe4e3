"""Compute-optimal test-time search (Snell et al. 2024, section 3).

The best search method depends on how hard a problem is: at a small budget,
easy problems gain from sampling in parallel (best-of-N) and hard ones from
searching steps (beam search), or the other way round. Given per-problem
results of several methods at several budgets N:

1. give each problem a difficulty score: `oracle_difficulty` (pass@1 of a
   few samples, with the gold answer) or `predicted_difficulty` (their
   mean verifier score, no gold answer needed);
2. cut the scores into quantile bins on a development split (bin 0 holds
   the lowest scores: the hardest problems);
3. per bin and budget pick the method with the best dev accuracy
   (`select_methods`);
4. on the test split, answer each problem with its bin's choice and compare
   with every fixed method at the same budget (`evaluate`).

Results are dicts {method: {N: [P] correct (bool)}}, one entry per problem in
the same order for every method and budget; methods may lack some budgets
(greedy has N = 1 only).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

Correct = Mapping[str, Mapping[int, Sequence[bool]]]


def oracle_difficulty(correct_samples: Sequence[Sequence[bool]]) -> np.ndarray:
  """[P] pass@1 of each problem's samples (higher is easier)."""
  return np.asarray([np.mean(s) if len(s) else 0.0 for s in correct_samples],
                    np.float64)


def predicted_difficulty(scores: Sequence[Sequence[float | None]]
                         ) -> np.ndarray:
  """[P] mean verifier score of each problem's samples (None skipped).

  A problem with no scored sample gets the median of the others, so that it
  lands in a middle bin rather than the hardest.
  """
  out = np.asarray([np.mean([s for s in row if s is not None])
                    if any(s is not None for s in row) else np.nan
                    for row in scores], np.float64)
  if np.isnan(out).all():
    return np.zeros_like(out)
  return np.where(np.isnan(out), np.nanmedian(out), out)


def bin_edges(difficulty: np.ndarray, num_bins: int) -> np.ndarray:
  """[num_bins - 1] interior quantile edges of the dev difficulties."""
  return np.quantile(np.asarray(difficulty, np.float64),
                     np.linspace(0, 1, num_bins + 1)[1:-1])


def assign_bins(difficulty: np.ndarray, edges: np.ndarray) -> np.ndarray:
  """[P] bin of each problem; ties at an edge go to the harder bin."""
  return np.searchsorted(edges, np.asarray(difficulty), side='left')


def _accuracy(values: Sequence[bool], mask: np.ndarray) -> float:
  values = np.asarray(values, bool)
  return float(values[mask].mean()) if mask.any() else float('nan')


def budgets_of(correct: Correct) -> list[int]:
  return sorted({int(n) for by_n in correct.values() for n in by_n})


def select_methods(correct: Correct, bins: np.ndarray,
                   num_bins: int) -> dict[int, list[str]]:
  """{N: [the best dev method of each bin]} among methods run at N.

  An empty bin takes the best method over all dev problems; ties go to the
  method listed first.
  """
  bins = np.asarray(bins)
  choice = {}
  for n in budgets_of(correct):
    methods = [m for m in correct if n in correct[m]]
    overall = max(methods, key=lambda m: np.mean(correct[m][n]))
    per_bin = []
    for b in range(num_bins):
      mask = bins == b
      per_bin.append(max(methods, key=lambda m: _accuracy(correct[m][n], mask))
                     if mask.any() else overall)
    choice[n] = per_bin
  return choice


def evaluate(correct: Correct, bins: np.ndarray,
             choice: Mapping[int, Sequence[str]],
             cost: Mapping[str, Mapping[int, Sequence[float]]] | None = None
             ) -> dict[int, dict[str, float]]:
  """{N: {'compute_optimal': acc, method: acc, ...}} on the test problems.

  With `cost` (e.g. FLOPs per problem, like `correct`), the row also holds
  'compute_optimal_cost', the mean cost of the chosen methods.
  """
  bins = np.asarray(bins)
  out = {}
  for n, per_bin in choice.items():
    picked = [bool(correct[per_bin[b]][n][i]) for i, b in enumerate(bins)]
    row = {'compute_optimal': float(np.mean(picked))}
    if cost is not None:
      row['compute_optimal_cost'] = float(np.mean(
          [cost[per_bin[b]][n][i] for i, b in enumerate(bins)]))
    for m in correct:
      if n in correct[m]:
        row[m] = float(np.mean(correct[m][n]))
    out[n] = row
  return out


def compute_optimal(dev_correct: Correct, dev_difficulty: np.ndarray,
                    test_correct: Correct, test_difficulty: np.ndarray, *,
                    num_bins: int = 5, test_cost=None) -> dict[str, Any]:
  """Selects per bin and budget on dev, reports test accuracies (JSON-ready)."""
  edges = bin_edges(dev_difficulty, num_bins)
  dev_bins = assign_bins(dev_difficulty, edges)
  test_bins = assign_bins(test_difficulty, edges)
  choice = select_methods(dev_correct, dev_bins, num_bins)
  test = evaluate(test_correct, test_bins, choice, test_cost)
  return {
      'num_bins': num_bins, 'edges': edges.tolist(),
      'dev_bin_sizes': np.bincount(dev_bins, minlength=num_bins).tolist(),
      'test_bin_sizes': np.bincount(test_bins, minlength=num_bins).tolist(),
      'choice': {str(n): c for n, c in choice.items()},
      'test_accuracy': {str(n): row for n, row in test.items()},
  }
