"""Subgoal-based proving: a checker for proofs written as chains of claims.

  from jaxreason.prover import check_proof
  check_proof({'x': 'int'}, ['x + 2 == 5'], 'x**2 == 9', ['x == 3']).proved
"""

from jaxreason.prover.checker import ExpressionError
from jaxreason.prover.checker import ProofReport
from jaxreason.prover.checker import StepResult
from jaxreason.prover.checker import check_proof
from jaxreason.prover.external import ExternalProver
from jaxreason.prover.external import PisaClient
from jaxreason.prover.minif2f import Statement
from jaxreason.prover.minif2f import UnsupportedConstruct
from jaxreason.prover.minif2f import parse_statement
