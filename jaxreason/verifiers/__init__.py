"""Verifiers: process and outcome reward models, ThinkPRM, LLM-as-a-judge."""

from jaxreason.verifiers.base import aggregate
from jaxreason.verifiers.base import AGGREGATIONS
from jaxreason.verifiers.base import first_below
from jaxreason.verifiers.base import join_steps
from jaxreason.verifiers.base import Judgement
from jaxreason.verifiers.base import split_steps
from jaxreason.verifiers.base import Verifier
from jaxreason.verifiers.judge import JUDGE_INSTRUCTION
from jaxreason.verifiers.judge import LLMJudge
from jaxreason.verifiers.thinkprm import continuation_logprobs
from jaxreason.verifiers.thinkprm import first_error_predictions
from jaxreason.verifiers.thinkprm import p_yes_from_logprobs
from jaxreason.verifiers.thinkprm import ThinkPRM
from jaxreason.verifiers.thinkprm_data import arithmetic_chain
from jaxreason.verifiers.thinkprm_data import filter_chain
from jaxreason.verifiers.thinkprm_data import labelled_solutions
from jaxreason.verifiers.thinkprm_data import noisy_arithmetic_teacher
from jaxreason.verifiers.thinkprm_data import sampler_teacher
from jaxreason.verifiers.thinkprm_data import sft_record
from jaxreason.verifiers.thinkprm_data import synthesize
from jaxreason.verifiers.thinkprm_data import verifier_prompt
from jaxreason.verifiers.verdicts import first_error_from_verdicts
from jaxreason.verifiers.verdicts import parse_final_index
from jaxreason.verifiers.verdicts import parse_verdicts
from jaxreason.verifiers.verdicts import verdicts_match
