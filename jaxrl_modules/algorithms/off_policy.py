"""Off-policy algorithms (DQN, SAC): gymnax (jitted iterations, `ScannedDriver`) or a gymnasium
vector env (host loop, `OffPolicyHostDriver`), both over the same module, learner and replay buffer
functions. The loop is chosen once, from the env, when the algorithm is built."""

from __future__ import annotations

from typing import Any

from jaxrl_modules.algorithms.driver import DrivenAlgorithm, Driver
from jaxrl_modules.envs.registry import is_gymnax

STEPS_PER_TRAIN = 1000  # env steps sampled per `train()` call (RLlib's min_sample_timesteps_per_iteration)


class OffPolicyAlgorithm(DrivenAlgorithm):
    """Each `train()` samples about 1000 env steps; every sampling step adds to the replay buffer and
    (after `num_steps_sampled_before_learning_starts`) takes one gradient step.

    A NaN/inf env observation or reward, loss or param raises `NonFiniteError`: the all-in-jit loop
    keeps its whole state from before the call; the host loop keeps its learner state (params,
    optimizer state, target params) and RNG from before the call, while its replay buffer and env
    counters keep what was sampled. `env_runners/episode_return_mean` is the mean return of the
    episodes that ended during the call, carried forward when none did (NaN before the first)."""

    def _make_driver(self) -> Driver:
        cfg = self.config
        if cfg.is_multi_agent:
            raise ValueError(f"{type(self).__name__} supports single-agent configs")
        if is_gymnax(cfg.env):
            from jaxrl_modules.algorithms.jit_driver import ScannedDriver
            from jaxrl_modules.algorithms.off_policy_jax import JaxOffPolicy

            pieces = JaxOffPolicy(cfg)
            per_iteration = pieces.steps * cfg.num_envs_per_env_runner
            return ScannedDriver(pieces, cfg.seed, max(1, STEPS_PER_TRAIN // per_iteration))
        from jaxrl_modules.algorithms.off_policy_host_driver import OffPolicyHostDriver

        return OffPolicyHostDriver(cfg, type(self).__name__, STEPS_PER_TRAIN)

    @property
    def jax_algo(self) -> Any:
        """The all-in-jit pieces (`JaxOffPolicy`) of a gymnax run; AttributeError for the host loop."""
        return self.driver.pieces

    @property
    def state(self) -> Any:
        """The all-in-jit train state (`OffPolicyTrainState`, as `train_state`); AttributeError for the host loop."""
        return self.driver.train_state
