"""SAC: an off-policy algorithm over DefaultSACRLModule and SACLearner."""

from jaxrl_modules.algorithms.off_policy import OffPolicyAlgorithm


class SAC(OffPolicyAlgorithm):
    """Soft Actor-Critic with twin Q networks and a learned temperature (Box actions)."""
