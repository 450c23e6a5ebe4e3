"""Synthetic, exactly verifiable reasoning tasks for CPU-scale experiments."""

from jaxreason.data.synthetic.arithmetic import apply_op
from jaxreason.data.synthetic.arithmetic import ArithmeticConfig
from jaxreason.data.synthetic.arithmetic import check_solution
from jaxreason.data.synthetic.arithmetic import check_step
from jaxreason.data.synthetic.arithmetic import extract_boxed
from jaxreason.data.synthetic.arithmetic import format_prompt
from jaxreason.data.synthetic.arithmetic import format_solution
from jaxreason.data.synthetic.arithmetic import format_step
from jaxreason.data.synthetic.arithmetic import generate_dataset
from jaxreason.data.synthetic.arithmetic import generate_problem
from jaxreason.data.synthetic.arithmetic import parse_question
from jaxreason.data.synthetic.arithmetic import parse_step
from jaxreason.data.synthetic.arithmetic import Problem
from jaxreason.data.synthetic.arithmetic import SolutionCheck
from jaxreason.data.synthetic.arithmetic import split_steps
from jaxreason.data.synthetic.arithmetic import to_jsonl_records
from jaxreason.data.synthetic.flawed import FlawedSolution
from jaxreason.data.synthetic.flawed import make_flawed_solution
