"""Algorithms, one folder each (`ppo`, `bc`), on a shared config and algorithm base."""

from jaxrl_modules.algorithms.algorithm import Algorithm
from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig

__all__ = ["Algorithm", "AlgorithmConfig"]
