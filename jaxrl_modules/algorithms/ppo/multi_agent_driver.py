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
from jaxrl_modules.apis import check_required_apis
from jaxrl_modules.envs.registry import make_env
from jaxrl_modules.multi_rl_module import MultiRLModule, MultiRLModuleSpec


def multi_spec(config: Any, obs_space: Any, act_space: Any) -> MultiRLModuleSpec:
    """Sub-specs with spaces filled in: observation spaces everywhere, action spaces for
    the policies (`multi_agent(policies=...)`, else the specs that name one, else all)."""
    cfg = config
    user = cfg.rl_module_spec
    if isinstance(user, MultiRLModuleSpec) and not isinstance(user.rl_module_specs, dict):
        # One spec shared by every ModuleID: one module per listed policy, else one default_policy.
        specs, cls = {mid: user.rl_module_specs for mid in cfg.policy_ids()}, user.multi_rl_module_class
    elif isinstance(user, MultiRLModuleSpec):
        specs, cls = user.module_specs(), user.multi_rl_module_class
    else:
        specs, cls = {mid: user for mid in cfg.policy_ids()}, MultiRLModule
    if cfg.policies is not None:
        missing = [m for m in cfg.policy_ids() if m not in specs]
        if missing:
            raise ValueError(f"policies {missing} have no spec in the MultiRLModuleSpec (it has {sorted(specs)})")
        policies = cfg.policy_ids()
    else:
        policies = [m for m, s in specs.items() if s is not None and s.action_space is not None] or list(specs)
    filled = {}
    for mid, spec in specs.items():
        base = cfg.module_spec_for(obs_space, act_space if mid in policies else None)
        if spec is not None:
            base.module_class = spec.module_class or base.module_class
            base.observation_space = spec.observation_space or obs_space
            base.action_space = spec.action_space or (act_space if mid in policies else None)
            base.model_config = cfg.merged_model_config(spec.model_config)
            base.inference_only = spec.inference_only
        filled[mid] = base
    return MultiRLModuleSpec(multi_rl_module_class=cls, rl_module_specs=filled)


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
        if self._stackable():
            from jaxrl_modules.algorithms.ppo.stacked_learner import StackedPPOLearner

            self.learner = StackedPPOLearner(self.module, cfg, self.policy_ids)
        else:
            self.learner = cfg.get_default_learner_class()(self.module, cfg, module_ids=self.policy_ids)
        self.runner = MultiAgentEnvRunner(cfg, self.policy_ids)
        self.module_returns = {mid: EpisodeReturns() for mid in self.policy_ids}
        fwd = self.module.phase_fn("exploration")
        self.act = jax.jit(lambda params, batch, rng, t: fwd(params, batch, jax.random.fold_in(rng, t)))

    def _stackable(self) -> bool:
        """Identical independent policies (a plain MultiRLModule) train through the stacked path."""
        if type(self.module) is not MultiRLModule or len(self.policy_ids) < 2 or set(self.policy_ids) != set(self.module.keys()):
            return False
        specs = self.module._specs()
        group = self.module._groups(self.policy_ids, None)
        return len(group) == 1 and all(specs[m].module_class is specs[self.policy_ids[0]].module_class for m in self.policy_ids)

    def _connect(self, obs: Any) -> Any:
        return obs  # each agent's observation goes to its module as it is

    def _steps(self) -> int:
        return max(1, self.config.batch_size() // len(self.runner.agents))

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
