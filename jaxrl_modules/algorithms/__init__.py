"""Algorithms, one folder each (`ppo`, `bc`), on a shared config and algorithm base."""

from jaxrl_modules.algorithms.algorithm import Algorithm
from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig
from jaxrl_modules.envs.registry import register_env

__all__ = ["Algorithm", "AlgorithmConfig", "register_env"]
