"""Verifiers: process and outcome reward models, ThinkPRM, LLM-as-a-judge."""

from jaxreason.verifiers.base import aggregate
from jaxreason.verifiers.base import AGGREGATIONS
from jaxreason.verifiers.base import first_below
from jaxreason.verifiers.base import join_steps
from jaxreason.verifiers.base import Judgement
from jaxreason.verifiers.base import split_steps
from jaxreason.verifiers.base import Verifier
from jaxreason.verifiers.oracle import OracleVerifier
