"""DQN: an off-policy algorithm over DefaultDQNRLModule and DQNLearner."""

from jaxrl_modules.algorithms.off_policy import OffPolicyAlgorithm


class DQN(OffPolicyAlgorithm):
    """Deep Q-Networks with RLlib's settings (double Q, dueling, epsilon schedule, target updates)."""
