"""PPO: the default module (and, with its learner and config, the algorithm)."""

from jaxrl_modules.algorithms.ppo.module import DefaultPPORLModule

__all__ = ["DefaultPPORLModule"]
