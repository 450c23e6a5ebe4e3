"""Test-time search: voting, best-of-N, PRM beam search, DVTS, compute-optimal."""

from jaxreason.search.budget import Budget
from jaxreason.search.budget import forward_flops
from jaxreason.search.budget import non_embedding_params
from jaxreason.search.voting import answer_classes
from jaxreason.search.voting import majority_vote
from jaxreason.search.voting import vote_from_classes
from jaxreason.search.voting import weighted_vote
