"""Reasoning with tools: the sandbox that runs model-written Python."""

from jaxreason.reasoning.sandbox import run_python
from jaxreason.reasoning.sandbox import SandboxResult
