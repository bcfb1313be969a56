"""PPO: the default module, the learner, the config and the algorithm."""

from jaxrl_modules.algorithms.ppo.config import PPOConfig
from jaxrl_modules.algorithms.ppo.learner import PPOLearner
from jaxrl_modules.algorithms.ppo.module import DefaultPPORLModule

__all__ = ["DefaultPPORLModule", "PPOConfig", "PPOLearner"]
