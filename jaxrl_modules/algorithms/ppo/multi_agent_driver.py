"""PPO's multi-agent host-loop driver: one `MultiRLModule`, one optimizer (or one vmapped update for
identical policies, `StackedPPOLearner`), a `MultiAgentEnvRunner` stepping one multi-agent env.

The host loop itself is `HostDriver`'s (the learner batches `{module_id: traj}` itself); this subclass
builds the multi-agent pieces and says how many steps to sample and what to report per module."""

from __future__ import annotations

from typing import Any

import jax

from jaxrl_modules.algorithms.env_runner import EpisodeReturns
from jaxrl_modules.algorithms.multi_agent_env_runner import (MultiAgentEnvRunner, agent_spaces, evaluate_multi_agent,
                                                             is_multi_agent_env)
from jaxrl_modules.algorithms.host_driver import HostDriver, floats
from jaxrl_modules.algorithms.ppo.learner import check_multi_agent_settings
from jaxrl_modules.algorithms.ppo.stacked_learner import make_ppo_learner
from jaxrl_modules.apis import check_required_apis
from jaxrl_modules.envs.registry import make_env
from jaxrl_modules.algorithms.multi_agent_spec import multi_spec


class MultiAgentHostDriver(HostDriver):
    """PPO's multi-agent host loop. `policy_ids` are the trained modules (those with an action space)."""

    def _build(self) -> None:
        cfg = self.config
        env = make_env(cfg.env, cfg.env_config)
        try:
            if not is_multi_agent_env(env):
                raise ValueError(f"multi_agent() needs a multi-agent env (one with possible_agents); got {cfg.env!r}")
            obs_space, act_space = agent_spaces(env, list(env.possible_agents)[0])
        finally:
            if hasattr(env, "close"):
                env.close()
        self.multi_spec = multi_spec(cfg, obs_space, act_space)
        self.module = self.multi_spec.build()
        self.policy_ids = [m for m in self.module.keys() if self.module[m].action_space is not None]
        stateful = [m for m in self.policy_ids if self.module[m].is_stateful()]
        if stateful:
            raise ValueError(f"model_config use_lstm: the multi-agent host loop trains stateless modules only; modules "
                             f"{stateful} are stateful (recurrent): expected use_lstm=False for multi_agent() configs "
                             "(recurrent PPO trains on single-agent envs, gymnasium or gymnax)")
        required = cfg.get_default_learner_class().rl_module_required_apis()
        for mid in self.policy_ids:
            check_required_apis(self.module[mid], required, mid)
        check_multi_agent_settings(cfg)  # what this host loop does not read is refused
        self.learner = make_ppo_learner(self.module, cfg)
        self.runner = MultiAgentEnvRunner(cfg, self.policy_ids)
        self.module_returns = {mid: EpisodeReturns() for mid in self.policy_ids}
        fwd = self.module.phase_fn("exploration")
        self.act = jax.jit(lambda params, batch, rng, t: fwd(params, batch, jax.random.fold_in(rng, t)))

    def _connect(self, obs: Any) -> Any:
        return obs  # each agent's observation goes to its module as it is

    def _steps(self) -> int:
        return max(1, self.config.total_batch_size() // len(self.runner.agents))

    def _result(self, result: dict, metrics: dict) -> dict:
        """Multi-agent runs report an episode's return as the sum over its agents, and per module
        `module_episode_returns_mean` (the returns of the agents mapped to it) the same way."""
        result["env_runners"]["module_episode_returns_mean"] = {
            mid: self.module_returns[mid].update(self.runner.finished_per_module[mid])["episode_return_mean"]
            for mid in self.policy_ids}
        result["learners"] = {mid: floats(m) for mid, m in metrics.items()}
        return result

    def evaluate(self, episodes: int) -> list[float]:
        """Each agent acts through its mapped module; an episode's return is the sum over its agents."""
        fwd = self.module.phase_fn("inference")
        return evaluate_multi_agent(self.config, lambda p, batch, key: fwd(p, batch, key), self.params(),
                                    self.policy_ids, episodes)

    def env_info(self) -> dict:
        runner = self.runner
        return {"connector": getattr(runner, "connector", None),
                "agent_to_module": [[a, runner.mapping_fn(a, 0)] for a in runner.agents]}
