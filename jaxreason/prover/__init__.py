"""Subgoal-based proving: a checker for proofs written as chains of claims.

  from jaxreason.prover import check_proof
  check_proof({'x': 'int'}, ['x + 2 == 5'], 'x**2 == 9', ['x == 3']).proved
"""

from jaxreason.prover.checker import ExpressionError
from jaxreason.prover.checker import ProofReport
from jaxreason.prover.checker import StepResult
from jaxreason.prover.checker import check_proof
