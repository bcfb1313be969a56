"""Environments: MultiAgentCartPole, RLlib's Atari wrapping, gymnax space conversion."""

from jaxrl_modules.envs.atari_wrappers import wrap_atari_for_new_api_stack
from jaxrl_modules.envs.multi_agent_cartpole import MultiAgentCartPole

__all__ = ["MultiAgentCartPole", "wrap_atari_for_new_api_stack"]
