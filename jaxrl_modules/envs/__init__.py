"""Environments: the env registry (`register_env`, `make_env`), MultiAgentCartPole, RLlib's Atari
wrapping, gymnax space conversion."""

from jaxrl_modules.envs.atari_wrappers import wrap_atari_for_new_api_stack
from jaxrl_modules.envs.multi_agent_cartpole import MultiAgentCartPole
from jaxrl_modules.envs.registry import make_env, register_env

__all__ = ["MultiAgentCartPole", "make_env", "register_env", "wrap_atari_for_new_api_stack"]
