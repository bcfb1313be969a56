"""PPO: one learner (`PPOLearner`) in three training loops (drivers): gymnax (the generic `JitLoop`,
each iteration one jitted function, `IterationDriver`), a gymnasium vector env (the generic
`HostDriver`), and a multi-agent env (`MultiAgentHostDriver`: one MultiRLModule, one optimizer).
The loop is chosen once, from the env, when the algorithm is built."""

from __future__ import annotations

from typing import Any

from jaxrl_modules.algorithms.driver import DrivenAlgorithm, Driver, make_driver
from jaxrl_modules.algorithms.env_runner import reject_env_runners
from jaxrl_modules.algorithms.multi_agent_env_runner import is_multi_agent_env
from jaxrl_modules.algorithms.jaxmarl_runner import is_jaxmarl
from jaxrl_modules.algorithms.ppo.stacked_learner import make_ppo_learner
from jaxrl_modules.envs.registry import is_gymnax, make_env


class PPO(DrivenAlgorithm):
    """Proximal Policy Optimization (RLlib's loss, defaults and result keys).

    `train()` results: `env_runners/episode_return_mean` is the mean return of the episodes that ended
    during the iteration, carried forward from the last iteration in which one ended when none did (NaN
    before the first); `num_episodes` counts the episodes that ended (0: carried). Multi-agent runs
    report an episode's return as the sum over its agents, and per module `module_episode_returns_mean`
    (the returns of the agents mapped to it) the same way. A NaN/inf env observation or reward, loss or
    param raises `NonFiniteError`, keeping the state from before the iteration."""

    def _make_driver(self) -> Driver:
        cfg = self.config
        if is_gymnax(cfg.env) or is_jaxmarl(cfg.env):  # JitLoop rejects num_env_runners > 0
            return make_driver(cfg, make_ppo_learner)  # multi_agent() on JaxMARL: stacked policies where identical
        probe = make_env(cfg.env, cfg.env_config)
        multi_env = is_multi_agent_env(probe)
        if hasattr(probe, "close"):
            probe.close()
        if cfg.is_multi_agent or multi_env:
            from jaxrl_modules.algorithms.ppo.multi_agent_driver import MultiAgentHostDriver

            reject_env_runners(cfg, "the multi-agent host loop")
            return MultiAgentHostDriver(cfg)
        return make_driver(cfg)

    @property
    def jax_ppo(self) -> Any:
        """The all-in-jit pieces (a `JitLoop` over the PPO learner) of a gymnax run; AttributeError for the host loops."""
        return self.driver.pieces
