r"""ThinkPRM: a generative process verifier that writes a verification chain.

  prm = ThinkPRM.from_policy('runs/thinkprm/sft', num_chains=4,
                             token_budget=1024)
  judgements = prm.judge(questions, steps)       # list[Judgement]
  first_errors = prm.first_errors(questions, steps)  # ProcessBench predictions

For each solution the verifier reads `verifier_prompt(question, steps)` and
writes a chain with one `\boxed{correct}` / `\boxed{incorrect}` per step and
the boxed index of the first wrong step (thinkprm_data.py shows the format).
After the chain comes "Is the solution correct?" and the verifier's P(yes)
is computed from the length-normalised, teacher-forced log-probs of " yes"
and " no" (lp = mean token log-prob; p = e^lp_yes / (e^lp_yes + e^lp_no)).

Everything runs on one KV cache per chain (host Python around the Sampler's
jitted prefill / decode / append): the prompt is encoded once and shared by
the K chains (`prefill(num_samples=K)`), the closing question and each
"Let's verify again" are appended to the cache, and " yes" / " no" are
scored token by token from the cached chain; nothing is re-encoded.

Test-time scaling, both under `token_budget` (generated tokens per
solution, all chains and rounds together; None: no limit besides
`max_chain_tokens` per round):
* parallel: K = `num_chains` sampled chains; step scores are the share of
  chains calling each step correct, P(yes) their mean, the first error
  their majority vote;
* sequential: `num_rounds` = R rounds; after each chain the verifier reads
  "Is the solution correct? Let's verify again." and writes another; the
  verdicts of a later round override earlier ones.

`Judgement.tokens` counts the prompt once, every generated and appended
token, and the scored " yes" / " no" tokens. A chain with no parsable
verdict is recorded in `info['unknown_chains']`; when no chain of a solution
has one, `step_scores` is None and `info['error']` says so.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Sequence

import jax
import numpy as np

from jaxreason.data.tokenizer import Tokenizer
from jaxreason.models.transformer import TransformerConfig
from jaxreason.sampling import policy
from jaxreason.sampling.cache import DecodeState
from jaxreason.sampling.sampler import Sampler
from jaxreason.sampling.sampling_params import SamplingParams
from jaxreason.verifiers import thinkprm_data as data_lib
from jaxreason.verifiers import verdicts as verdicts_lib
from jaxreason.verifiers.base import Judgement

Params = Any


def continuation_logprobs(sampler: Sampler, params: Params,
                          state: DecodeState,
                          continuations: Sequence[Sequence[int]]
                          ) -> tuple[DecodeState, list[np.ndarray]]:
  """Teacher-forced log-probs of continuations[b] after row b's cache.

  Token t of each row is scored from the state's next-token logits
  (log-softmax at temperature 1), then appended with `Sampler.extend`, so
  the cached prefix is never re-encoded. Consumes `state`; returns the
  extended state and one float32 array of len(continuations[b]) per row
  (rows past len(continuations) are left alone).
  """
  n = len(continuations)
  if n > state.batch_size:
    raise ValueError(f'{n} continuations for {state.batch_size} rows')
  longest = max((len(c) for c in continuations), default=0)
  out = [np.zeros(len(c), np.float32) for c in continuations]
  for t in range(longest):
    logits = np.asarray(state.logits[:n], np.float64)  # [n, V]
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    step = []
    for b, c in enumerate(continuations):
      if t < len(c):
        out[b][t] = logp[b, c[t]]
        step.append([c[t]])
      else:
        step.append([])
    step += [[]] * (state.batch_size - n)
    state = sampler.extend(params, state, step)
  return state, out


def first_error_predictions(verifier: Any,
                            items: Sequence[tuple[str, Sequence[str]]]
                            ) -> list[int | None]:
  """ProcessBench predictions of any `Verifier`: for each (question, steps),
  the judgement's earliest wrong step (-1 none, None unparsable)."""
  if not items:
    return []
  questions, steps = zip(*items)
  return [j.first_error for j in verifier.judge(list(questions),
                                                [list(s) for s in steps])]


def p_yes_from_logprobs(lp_yes: np.ndarray, lp_no: np.ndarray) -> float:
  """P(yes) from per-token log-probs: softmax of the two mean log-probs."""
  a, b = float(np.mean(lp_yes)), float(np.mean(lp_no))
  m = max(a, b)
  return float(np.exp(a - m) / (np.exp(a - m) + np.exp(b - m)))


@dataclasses.dataclass
class _Chain:
  """One chain's host-side record while it is being written."""
  text: str = ''
  tokens: list[int] = dataclasses.field(default_factory=list)  # After prompt.
  generated: int = 0
  appended: int = 0
  ended: bool = False  # The cache ends with the closing question.
  finish: str = ''


class ThinkPRM:
  """A generative verifier (a `Verifier`): chains, verdicts and P(yes).

  Args:
    config, params, tokenizer: the verifier model.
    num_chains: K chains per solution (parallel scaling).
    num_rounds: R verification rounds per chain (sequential scaling).
    max_chain_tokens: the most tokens one round of one chain generates.
    token_budget: the most tokens generated per solution, all chains and
      rounds together (split evenly over the K chains); None: no limit.
    temperature, top_p: chain sampling (temperature 0: greedy).
    cache_size: KV cache positions per chain (prompt + everything after).
    batch_size: solutions per batch (K chains each).
    seed: sampling seed (each `judge` call advances it).
  """

  def __init__(self, config: TransformerConfig, params: Params,
               tokenizer: Tokenizer, *, num_chains: int = 1,
               num_rounds: int = 1, max_chain_tokens: int = 256,
               token_budget: int | None = None, temperature: float = 0.0,
               top_p: float = 1.0, cache_size: int = 1024,
               batch_size: int = 16, seed: int = 0):
    if num_chains < 1 or num_rounds < 1:
      raise ValueError(f'num_chains={num_chains} and num_rounds={num_rounds} '
                       'must be >= 1')
    self.config, self.params, self.tokenizer = config, params, tokenizer
    self.num_chains, self.num_rounds = num_chains, num_rounds
    self.max_chain_tokens = max_chain_tokens
    self.token_budget = token_budget
    self.temperature, self.top_p = temperature, top_p
    self.batch_size = batch_size
    self.seed = seed
    self._calls = 0
    self.sampler = Sampler(config, cache_size=cache_size, tokenizer=tokenizer,
                           stop_strings=(data_lib.QUESTION,))
    enc = tokenizer.encode
    self._end_ids = enc(data_lib.CHAIN_END)
    self._again_ids = enc(data_lib.VERIFY_AGAIN)
    self._yes_ids, self._no_ids = enc(data_lib.YES), enc(data_lib.NO)
    # Room kept free in the cache for what is appended after a round.
    self._reserve = (len(self._end_ids) + len(self._again_ids)
                     + max(len(self._yes_ids), len(self._no_ids)) + 1)

  @classmethod
  def from_policy(cls, path: str, **kwargs) -> 'ThinkPRM':
    """A verifier from a jaxreason workdir or Hugging Face folder."""
    config, params, tokenizer = policy.load_policy(path)
    return cls(config, params, tokenizer, **kwargs)

  def prompt(self, question: str, steps: Sequence[str]) -> str:
    return data_lib.verifier_prompt(question, steps)

  # The Verifier protocol.

  def judge(self, questions: Sequence[str],
            steps: Sequence[Sequence[str]]) -> list[Judgement]:
    if len(questions) != len(steps):
      raise ValueError(f'{len(questions)} questions, {len(steps)} step lists')
    out: list[Judgement] = []
    for start in range(0, len(questions), self.batch_size):
      out += self._judge_batch(questions[start:start + self.batch_size],
                               steps[start:start + self.batch_size])
    return out

  def first_errors(self, questions: Sequence[str],
                   steps: Sequence[Sequence[str]]) -> list[int | None]:
    """Predicted earliest wrong step per solution (-1 none, None unparsable),
    for ProcessBench."""
    return [j.first_error for j in self.judge(questions, steps)]

  # One batch.

  def _judge_batch(self, questions, steps) -> list[Judgement]:
    prompts = [self.tokenizer.encode(self.prompt(q, s), add_bos=True)
               for q, s in zip(questions, steps)]  # BOS as in SFT training.
    room = self.sampler.cache_size - self._reserve * self.num_rounds
    ok = [i for i, p in enumerate(prompts) if len(p) < room]
    results: dict[int, Judgement] = {
        i: Judgement(None, None, 0, {'error': f'prompt of {len(p)} tokens '
                                     'does not fit the cache'})
        for i, p in enumerate(prompts) if i not in set(ok)}
    if ok:
      chains = self._write_chains(prompts, ok)
      for j, i in enumerate(ok):
        k = self.num_chains
        results[i] = self._judgement(len(steps[i]), len(prompts[i]),
                                     chains[j * k:(j + 1) * k])
    return [results[i] for i in range(len(prompts))]

  def _write_chains(self, prompts, ok) -> list[tuple[_Chain, float]]:
    """Chains (K per prompt in `ok`, in order) and their P(yes)."""
    k = self.num_chains
    self._calls += 1
    rng = jax.random.fold_in(jax.random.key(self.seed), self._calls)
    state = self.sampler.prefill(self.params, [prompts[i] for i in ok],
                                 num_samples=k, pad_rows=True)
    rows = len(ok) * k
    lengths = np.asarray([len(prompts[i]) for i in ok for _ in range(k)])
    chains = [_Chain() for _ in range(rows)]
    allowance = np.full(rows, np.iinfo(np.int32).max // 2, np.int64)
    if self.token_budget is not None:
      allowance[:] = self.token_budget // k
    used = np.zeros(rows, np.int64)
    sampling = SamplingParams.make(state.batch_size,
                                   temperature=self.temperature,
                                   top_p=self.top_p)
    for r in range(self.num_rounds):
      if r > 0:  # Sequential scaling: ask for another round.
        go = allowance - used > 0
        appended = []
        for b, c in enumerate(chains):
          ids = (([] if c.ended else self._end_ids) + self._again_ids
                 if go[b] else [])
          c.text += self.tokenizer.decode(ids)
          c.tokens += ids
          c.appended += len(ids)
          c.ended = c.ended and not ids
          lengths[b] += len(ids)
          appended.append(ids)
        state = self.sampler.extend(
            self.params, state, appended + [[]] * (state.batch_size - rows))
      else:
        go = np.ones(rows, bool)
      left = self.sampler.cache_size - lengths - self._reserve * (
          self.num_rounds - r)
      max_new = np.minimum(np.minimum(self.max_chain_tokens, allowance - used),
                           np.maximum(left, 0))
      max_new = np.where(go, max_new, 0).astype(np.int32)
      max_new = np.concatenate(
          [max_new, np.zeros(state.batch_size - rows, np.int32)])
      state, gen = self.sampler.decode(self.params, state, sampling,
                                       jax.random.fold_in(rng, r), max_new)
      reasons = gen.finish_reasons()
      for b, toks in enumerate(gen.token_lists()[:rows]):
        if not max_new[b]:
          continue
        c = chains[b]
        c.text += self.sampler.completion_text(toks, reasons[b])
        c.tokens += toks
        c.generated += len(toks)
        c.finish = reasons[b]
        c.ended = reasons[b] == 'stop' and c.text.endswith(data_lib.QUESTION)
        used[b] += len(toks)
        lengths[b] += len(toks)
    # The closing question, then " yes" and " no" from the cached chain.
    closing = []
    for c in chains:
      ids = [] if c.ended else self._end_ids
      c.text += self.tokenizer.decode(ids)
      c.tokens += ids
      c.appended += len(ids)
      closing.append(ids)
    state = self.sampler.extend(
        self.params, state, closing + [[]] * (state.batch_size - rows))
    both = np.concatenate([np.arange(rows), np.arange(rows)])
    state = state.take(both)
    _, lps = continuation_logprobs(
        self.sampler, self.params, state,
        [self._yes_ids] * rows + [self._no_ids] * rows)
    return [(c, p_yes_from_logprobs(lps[b], lps[rows + b]))
            for b, c in enumerate(chains)]

  def _judgement(self, num_steps: int, prompt_len: int,
                 chains: Sequence[tuple[_Chain, float]]) -> Judgement:
    verdicts = [verdicts_lib.parse_verdicts(c.text, num_steps)
                for c, _ in chains]
    finals = [verdicts_lib.parse_final_index(c.text) for c, _ in chains]
    tokens = prompt_len + sum(
        c.generated + c.appended + len(self._yes_ids) + len(self._no_ids)
        for c, _ in chains)
    p_yes = [p for _, p in chains]
    info = {
        'p_yes': float(np.mean(p_yes)), 'p_yes_chains': p_yes,
        'verdicts': verdicts, 'first_error_chains': finals,
        'first_error_from_verdicts': [
            verdicts_lib.first_error_from_verdicts(v) for v in verdicts],
        'chains': [c.text for c, _ in chains],
        'chain_tokens': [c.tokens for c, _ in chains],
        'finish_reasons': [c.finish for c, _ in chains],
        'generated_tokens': sum(c.generated for c, _ in chains),
        'unknown_chains': sum(all(v is None for v in vs) for vs in verdicts),
        'unknown_steps': sum(v is None for vs in verdicts for v in vs),
    }
    known = [f for f in finals if f is not None]
    first_error = (collections.Counter(known).most_common(1)[0][0]
                   if known else None)
    if info['unknown_chains'] == len(chains) and num_steps:
      info['error'] = 'no parsable verdict in any chain'
      return Judgement(None, first_error, tokens, info)
    scores = []
    for i in range(num_steps):
      vs = [v[i] for v in verdicts if v[i] is not None]
      scores.append(float(np.mean(vs)) if vs else float('nan'))
    return Judgement(tuple(scores), first_error, tokens, info)
