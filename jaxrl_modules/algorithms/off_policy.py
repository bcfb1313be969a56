"""Off-policy algorithms (DQN, SAC): the algorithm's learner wrapped in a `ReplayLearner` (replay
buffer and n-step window in its state) in the generic loops: gymnax (`JitLoop`, jitted iterations
scanned, `ScannedDriver`) or a gymnasium vector env (`HostDriver`, rollouts of one step). The loop is
chosen once, from the env, when the algorithm is built."""

from __future__ import annotations

from typing import Any

from jaxrl_modules.algorithms.driver import DrivenAlgorithm, Driver, make_driver
from jaxrl_modules.algorithms.off_policy_jax import replay_learner, rollout_steps

STEPS_PER_TRAIN = 1000  # env steps sampled per `train()` call (RLlib's min_sample_timesteps_per_iteration)


class OffPolicyAlgorithm(DrivenAlgorithm):
    """Each `train()` samples about 1000 env steps; every sampling step adds to the replay buffer and
    (after `num_steps_sampled_before_learning_starts`) takes one gradient step.

    A NaN/inf env observation or reward, loss or param raises `NonFiniteError`: the all-in-jit loop
    keeps its whole state from before the call; the host loop keeps its learner state (params,
    optimizer state, target params, replay buffer) and RNG from before the call, while its envs and
    env-step counter keep what was sampled. `env_runners/episode_return_mean` is the mean return of the
    episodes that ended during the call, carried forward when none did (NaN before the first)."""

    def _make_driver(self) -> Driver:
        cfg = self.config
        if cfg.is_multi_agent:
            raise ValueError(f"{type(self).__name__} supports single-agent configs")
        return make_driver(cfg, replay_learner, steps=rollout_steps(cfg), env_steps_per_train=STEPS_PER_TRAIN,
                           stateless_only=type(self).__name__)

    @property
    def jax_algo(self) -> Any:
        """The all-in-jit pieces (a `JitLoop` over a `ReplayLearner`) of a gymnax run; AttributeError for the host loop."""
        return self.driver.pieces

    @property
    def state(self) -> Any:
        """The all-in-jit train state (`jit_loop.TrainState`, as `train_state`); AttributeError for the host loop."""
        return self.driver.train_state
