"""Answer grading and rewards for math reasoning (RL, verifiable rewards)."""

from jaxreason.rewards.grader import answers_match
from jaxreason.rewards.grader import extract_answer
from jaxreason.rewards.grader import grade
from jaxreason.rewards.math_rewards import accuracy_reward
from jaxreason.rewards.math_rewards import combine_rewards
from jaxreason.rewards.math_rewards import cosine_length_reward
from jaxreason.rewards.math_rewards import cosine_scaled
from jaxreason.rewards.math_rewards import format_reward
from jaxreason.rewards.math_rewards import overlong_penalty
from jaxreason.rewards.math_rewards import overlong_reward
from jaxreason.rewards.math_rewards import rewards_from_config
