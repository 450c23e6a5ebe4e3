"""The generators on a tiny random model: chain shapes and partner scores."""

import jax
import numpy as np
import pytest

from jaxreason.data.tokenizer import CharTokenizer
from jaxreason.models.transformer import Transformer, TransformerConfig
from jaxreason.models.transformer import init_params
from jaxreason.prover import generators
from jaxreason.prover import synthetic


@pytest.fixture(scope='module')
def setup():
  tok = CharTokenizer()
  cfg = TransformerConfig(vocab_size=tok.vocab_size, num_layers=1,
                          embed_dim=32, mlp_dim=64, num_heads=4,
                          num_kv_heads=2, tie_embeddings=True)
  params = init_params(cfg, jax.random.key(0))
  gens = generators.Generators(cfg, tok, max_new_tokens=6, batch_prompts=2)
  return tok, cfg, params, gens


@pytest.mark.slow  # Compiles the sampler for three prompt formats.
def test_sample_chains_shapes_and_given_formal(setup):
  _, _, params, gens = setup
  problems = synthetic.generate_problems(3, seed=0)
  informal = [p.informal for p in problems]
  chains = gens.sample_chains(params, informal, n=2, rng=0)
  assert [len(row) for row in chains] == [2, 2, 2]
  assert all(isinstance(c.proof, str) for row in chains for c in row)
  given = gens.sample_chains(params, informal, n=2, rng=0,
                             formal=[p.formal for p in problems])
  assert [[c.formal for c in row] for row in given] == [
      [p.formal] * 2 for p in problems]
  with pytest.raises(ValueError, match='formal statements'):
    gens.sample_chains(params, informal, n=1, rng=0, formal=['x'])


def test_partner_scores_match_a_numpy_log_softmax(setup):
  tok, cfg, params, gens = setup
  chains = [[generators.Chain('{x:int} 2*x == 4 => x == 2', 'divide by 2',
                              'x == 2'),
             generators.Chain('{x:int} 2*x == 4 => x == 2', 'halve',
                              '2*x == 4 ; x == 2')]]
  got = gens.partner_scores(params, chains)
  assert len(got) == 1 and got[0].shape == (2,)
  for c, score in zip(chains[0], got[0]):
    prompt = tok.encode(generators.prompt('proof', formal=c.formal,
                                          sketch=c.sketch), add_bos=True)
    proof = tok.encode(c.proof, add_eos=True)
    seq = np.asarray([prompt + proof], np.int32)
    logits = np.asarray(Transformer(cfg).apply({'params': params}, seq),
                        np.float64)[0]
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(
        -1, keepdims=True)) - logits.max(-1, keepdims=True)
    want = np.mean([logp[len(prompt) - 1 + j, t] for j, t in enumerate(proof)])
    assert score == pytest.approx(want, abs=1e-4)
  # Random model: about -log(vocab) per token.
  assert abs(got[0].mean() + np.log(tok.vocab_size)) < 1.0
