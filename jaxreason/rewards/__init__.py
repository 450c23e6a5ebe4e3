"""Answer grading and rewards for math reasoning (RL with verifiable rewards)."""

from jaxreason.rewards.grader import answers_match
from jaxreason.rewards.grader import extract_answer
from jaxreason.rewards.grader import grade
