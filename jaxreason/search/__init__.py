"""Test-time search: voting, best-of-N, PRM beam search, DVTS, compute-optimal."""

from jaxreason.search.budget import Budget
from jaxreason.search.budget import forward_flops
from jaxreason.search.budget import non_embedding_params
