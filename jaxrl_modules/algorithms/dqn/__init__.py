"""DQN: the default module, the learner and the config (all-in-jit over gymnax)."""

from jaxrl_modules.algorithms.dqn.config import DQNConfig
from jaxrl_modules.algorithms.dqn.learner import DQNLearner
from jaxrl_modules.algorithms.dqn.module import DefaultDQNRLModule, DQNModelConfig

__all__ = ["DQNConfig", "DQNLearner", "DQNModelConfig", "DefaultDQNRLModule"]
