"""The three SubgoalXL generators as language models over text.

* statement formaliser: informal statement -> formal statement,
* subgoal generator:    formal statement -> informal subgoal sketch,
* proof generator:      formal statement + sketch -> formal proof (the step
                        claims the checker verifies one by one).

Each is a prompt format for a causal LM (`PROMPTS`); the demo trains ONE
shared model on all three formats (three separate models would triple the
CPU cost; nothing here assumes they share parameters: `Generators` takes
params per stage). The model, tokenizer, SFT loss and `Sampler` are the
codebase's own; this module only formats text and calls them.

  gens = Generators(model_cfg, tokenizer, max_new_tokens=48)
  chains = gens.sample_chains(params_by_stage, informal, n=4, rng=0)
  rewards = gens.partner_scores(params_by_stage[PROOF], chains)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from jaxreason.data.tokenizer import Tokenizer
from jaxreason.models.transformer import TransformerConfig
from jaxreason.prover import synthetic
from jaxreason.sampling import scoring
from jaxreason.sampling.sampler import Sampler

FORMALISE, SUBGOALS, PROOF = 'formalise', 'subgoals', 'proof'
STAGES = (FORMALISE, SUBGOALS, PROOF)
# Prompt prefixes: one letter per stage, then the input, then a newline.
PREFIX = {FORMALISE: 'F: ', SUBGOALS: 'S: ', PROOF: 'P: '}


@dataclasses.dataclass(frozen=True)
class Chain:
  """One pass through the generators for one problem (texts)."""

  formal: str
  sketch: str
  proof: str


def prompt(stage: str, *, informal: str = '', formal: str = '',
           sketch: str = '') -> str:
  """The prompt of `stage` ('formalise' | 'subgoals' | 'proof')."""
  if stage == FORMALISE:
    return f'{PREFIX[stage]}{informal}\n'
  if stage == SUBGOALS:
    return f'{PREFIX[stage]}{formal}\n'
  if stage == PROOF:
    return f'{PREFIX[stage]}{formal} | {sketch}\n'
  raise ValueError(f'stage={stage!r}: expected one of {STAGES}')


def known_chain(problem: synthetic.Problem) -> Chain:
  """The chain of a problem's known proof (the seed data)."""
  return Chain(problem.formal, synthetic.format_sketch(problem.sketch),
               synthetic.format_steps(problem.steps))


def sft_records(pairs: Sequence[tuple[str, Chain]],
                stages: Sequence[str] = STAGES) -> list[dict[str, str]]:
  """(informal, chain) pairs -> one SFT record per stage: prompt, completion."""
  records = []
  for informal, c in pairs:
    targets = {FORMALISE: c.formal, SUBGOALS: c.sketch, PROOF: c.proof}
    for stage in stages:
      records.append({
          'prompt': prompt(stage, informal=informal, formal=c.formal,
                           sketch=c.sketch),
          'completion': targets[stage], 'stage': stage})
  return records


@dataclasses.dataclass(frozen=True)
class Generators:
  """Samples chains and scores them with the codebase's sampler and scorer.

  `params` arguments are either one params tree (a shared model) or a
  mapping {stage: params} (a model per stage, same `model_cfg`).
  """

  model_cfg: TransformerConfig
  tokenizer: Tokenizer
  max_new_tokens: int = 48
  max_prompt_len: int = 128
  batch_prompts: int = 64  # Prompts per generate call.

  def _sampler(self) -> Sampler:
    return Sampler(self.model_cfg,
                   cache_size=self.max_prompt_len + self.max_new_tokens,
                   tokenizer=self.tokenizer)

  def _encode(self, text: str) -> list[int]:
    ids = self.tokenizer.encode(text, add_bos=self.tokenizer.bos_id is not None)
    if len(ids) > self.max_prompt_len:
      raise ValueError(f'prompt of {len(ids)} tokens > max_prompt_len='
                       f'{self.max_prompt_len}: {text[:80]!r}...')
    return ids

  def generate(self, params: Any, prompts: Sequence[str], *, n: int,
               rng: jax.Array | int, temperature: float) -> list[list[str]]:
    """n completions (text, EOS dropped) of each prompt."""
    if isinstance(rng, int):
      rng = jax.random.key(rng)
    sampler = self._sampler()
    out = []
    for start in range(0, len(prompts), self.batch_prompts):
      chunk = [self._encode(p) for p in prompts[start:start + self.batch_prompts]]
      samples = sampler.generate(
          params, chunk, max_new_tokens=self.max_new_tokens, n=n,
          rng=jax.random.fold_in(rng, start), temperature=temperature)
      out += [[s.text.replace(self.tokenizer.id_to_token(
          self.tokenizer.eos_id), '') for s in row] for row in samples]
    return out

  def sample_chains(self, params: Any, informal: Sequence[str], *, n: int,
                    rng: jax.Array | int, temperature: float = 1.0,
                    formal: Sequence[str] | None = None) -> list[list[Chain]]:
    """n chains per problem: formalise (unless `formal` is given), sketch, proof.

    Stage after stage: n formal statements per problem, one sketch per
    formal statement, one proof per sketch.
    """
    if isinstance(rng, int):
      rng = jax.random.key(rng)
    keys = jax.random.split(rng, 3)
    p = len(informal)
    if formal is None:
      forms = self.generate(_stage_params(params, FORMALISE),
                            [prompt(FORMALISE, informal=t) for t in informal],
                            n=n, rng=keys[0], temperature=temperature)
      flat_formal = [f.strip() for row in forms for f in row]
    else:
      if len(formal) != p:
        raise ValueError(f'{len(formal)} formal statements for {p} problems')
      flat_formal = [f for f in formal for _ in range(n)]
    sketches = self.generate(_stage_params(params, SUBGOALS),
                             [prompt(SUBGOALS, formal=f) for f in flat_formal],
                             n=1, rng=keys[1], temperature=temperature)
    flat_sketch = [s[0].strip() for s in sketches]
    proofs = self.generate(
        _stage_params(params, PROOF),
        [prompt(PROOF, formal=f, sketch=s)
         for f, s in zip(flat_formal, flat_sketch)],
        n=1, rng=keys[2], temperature=temperature)
    flat = [Chain(f, s, pr[0].strip())
            for f, s, pr in zip(flat_formal, flat_sketch, proofs)]
    return [flat[i * n:(i + 1) * n] for i in range(p)]

  def partner_scores(self, params: Any, chains: Sequence[Sequence[Chain]], *,
                     batch_size: int = 256) -> list[np.ndarray]:
    """Per problem, [n] rewards: the proof generator's mean token log-prob.

    r = (1 / |y|) log p_proof(y | formal, sketch), y the proof and its EOS:
    the partner model's length-normalised log-likelihood that SubgoalXL's
    rejection sampling ranks subgoal candidates by (`sampling.scoring`).
    """
    flat = [c for row in chains for c in row]
    prompts = [self._encode(prompt(PROOF, formal=c.formal, sketch=c.sketch))
               for c in flat]
    conts = [self.tokenizer.encode(c.proof, add_eos=True) for c in flat]
    proof_params = _stage_params(params, PROOF)
    means = []
    for start in range(0, len(flat), batch_size):
      logps = scoring.score(proof_params, self.model_cfg,
                            prompts[start:start + batch_size],
                            conts[start:start + batch_size])
      means += [float(np.mean(lp)) for lp in logps]
    out, i = [], 0
    for row in chains:
      out.append(np.asarray(means[i:i + len(row)], np.float64))
      i += len(row)
    return out


def _stage_params(params: Any, stage: str) -> Any:
  if isinstance(params, Mapping) and set(params) == set(STAGES):
    return params[stage]
  return params
