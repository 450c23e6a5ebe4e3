"""Test-time search: voting, best-of-N, PRM beam search, DVTS, compute-optimal.

  gen = LMGenerator(config, params, tokenizer, cache_size=256,
                    max_new_tokens=96)
  results = search.beam_search(gen, verifier, questions, prompts, n=16)
  results = search.best_of_n.best_of_n(gen, verifier, questions, prompts, 16)
  results = search.dvts.dvts(gen, verifier, questions, prompts, n=16)
  results[0].answer, results[0].candidates, results[0].budget

Every method takes any `jaxreason.verifiers.Verifier` (or None), a
`Generator` (the policy, step by step from its KV cache), the questions (for
the verifier) and the prompts (for the policy), and returns one
`SearchResult` per problem.
"""

# Modules named like their method (best_of_n.best_of_n, dvts.dvts) stay
# modules here: exporting the function would hide the module.
from jaxreason.search import beam
from jaxreason.search import best_of_n
from jaxreason.search import compute_optimal
from jaxreason.search import dvts
from jaxreason.search.beam import beam_search
from jaxreason.search.best_of_n import greedy
from jaxreason.search.best_of_n import reselect
from jaxreason.search.budget import Budget
from jaxreason.search.budget import forward_flops
from jaxreason.search.budget import non_embedding_params
from jaxreason.search.voting import answer_classes
from jaxreason.search.voting import majority_vote
from jaxreason.search.voting import vote_from_classes
from jaxreason.search.voting import weighted_vote
from jaxreason.search.common import Candidate
from jaxreason.search.common import SearchResult
from jaxreason.search.generator import Generator
from jaxreason.search.generator import LMGenerator
from jaxreason.search.generator import Piece
