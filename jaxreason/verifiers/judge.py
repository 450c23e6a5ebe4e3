"""LLM-as-a-judge: ThinkPRM's prompt and scoring, zero-shot.

The baseline ThinkPRM is compared with (Khalifa et al., 2025, section 4): a
model that was never trained on verification chains (the base or SFT
policy) reads the same prompt, writes whatever chain it writes, and is
scored the same way: per-step verdicts and the first-error index parsed from
its boxed text, P(yes) after "Is the solution correct?". Unparsable output
gives `step_scores=None` / `first_error=None` (counted as wrong by
ProcessBench), recorded in the judgement's info.

  judge = LLMJudge.from_policy('runs/results/quickstart_seed0')
  judgements = judge.judge(questions, steps)
"""

from __future__ import annotations

from typing import Sequence

from jaxreason.verifiers import thinkprm_data
from jaxreason.verifiers.thinkprm import ThinkPRM

# For instruction-tuned models: prepended to the prompt with `instruction=`.
JUDGE_INSTRUCTION = (
    'Check the solution step by step. For each step i write "Step i:" and '
    '\\boxed{correct} or \\boxed{incorrect}; then write "First error:" and '
    'the boxed index of the first incorrect step (-1 if none).\n')


class LLMJudge(ThinkPRM):
  """A zero-shot judge: `ThinkPRM` with one greedy chain by default.

  Args: as `ThinkPRM`, plus `instruction`, text put before the verifier
  prompt ('' keeps ThinkPRM's prompt exactly, the like-for-like baseline;
  `JUDGE_INSTRUCTION` for chat models that need to be told the format).
  """

  def __init__(self, *args, instruction: str = '', **kwargs):
    super().__init__(*args, **kwargs)
    self.instruction = instruction

  def prompt(self, question: str, steps: Sequence[str]) -> str:
    return self.instruction + thinkprm_data.verifier_prompt(question, steps)
