"""Environments: MultiAgentCartPole and gymnax space conversion."""

from jaxrl_modules.envs.multi_agent_cartpole import MultiAgentCartPole

__all__ = ["MultiAgentCartPole"]
