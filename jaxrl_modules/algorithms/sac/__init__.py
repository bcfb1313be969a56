"""SAC: the default module, the learner and the config."""

from jaxrl_modules.algorithms.sac.config import SACConfig
from jaxrl_modules.algorithms.sac.learner import SACLearner
from jaxrl_modules.algorithms.sac.module import DefaultSACRLModule, SACModelConfig

__all__ = ["DefaultSACRLModule", "SACConfig", "SACLearner", "SACModelConfig"]
