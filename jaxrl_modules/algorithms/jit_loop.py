"""`JitLoop`: any algorithm's training fully inside `jax.jit` over gymnax envs, composed from a
`JaxEnvRunner` and a learner (`learner.Learner`): each iteration samples a rollout (a `lax.scan` over
env steps) and hands it to `learner.learn`. PPO, DQN and SAC all train through it; `build_train_fn`
is its `init` followed by its `iteration` scanned, and the jit drivers call the same functions.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxrl_modules.algorithms.action_transform import action_settings
from jaxrl_modules.algorithms.data_parallel import make_data_parallel
from jaxrl_modules.algorithms.env_runner import reject_env_runners, reject_stateful
from jaxrl_modules.algorithms.jax_evaluate import takes_timestep
from jaxrl_modules.algorithms.jax_env_runner import JaxEnvRunner, RunnerState
from jaxrl_modules.algorithms.learner import Rollout, default_learner
from jaxrl_modules.algorithms.multi_agent_spec import multi_spec, reads_global_state, resolve_mapping
from jaxrl_modules.algorithms.nonfinite import CheckedIteration
from jaxrl_modules.algorithms.train_fn import TrainFn
from jaxrl_modules.apis import check_required_apis
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns
from jaxrl_modules.envs.registry import is_gymnax, make_gymnax

MODULE_RETURN_PREFIX = "module_episode_return_mean/"  # + ModuleID: a multi-agent train_fn metric per module


class TrainState(NamedTuple):
    learner: Any  # the learner's state (params inside: `learner.params(state)`)
    runner: RunnerState
    rng: jax.Array
    env_steps: jax.Array


class JitLoop(CheckedIteration):
    """The pieces of all-in-jit training for one config: runner, connector, module, learner, and the
    pure `init(rng) -> TrainState` and `iteration(state) -> (state, metrics)`.

    `make_learner(module, config, num_envs)` builds the learner (default: the config's learner class;
    `num_envs` is a policy's batch rows of one env step: envs, or for a JaxMARL env envs x the agents a
    policy acts for: all of them, or its own when gathered);
    `steps` is each iteration's rollout length per env (default `config.rollout_length()`);
    `stateless_only` names an algorithm that refuses recurrent modules (DQN, SAC)."""

    def __init__(self, config: Any, make_learner: Callable = default_learner, *, steps: Optional[int] = None,
                 stateless_only: Optional[str] = None):
        from jaxrl_modules.algorithms.jaxmarl_runner import JaxMarlRunner, is_jaxmarl, make_jaxmarl

        if not (is_gymnax(config.env) or is_jaxmarl(config.env)):
            raise ValueError(f"All-in-jit training needs a gymnax env ('gymnax:<id>') or a JaxMARL env "
                             f"('jaxmarl:<name>'); got {config.env!r}")
        reject_env_runners(config, "the all-in-jit gymnax loop")
        if config.is_multi_agent and not is_jaxmarl(config.env):
            raise ValueError("All-in-jit training of multi_agent() configs needs a JaxMARL env ('jaxmarl:<name>'); "
                             f"got {config.env!r}: use the host loop for other multi-agent envs")
        self.config = config
        self.connector: Any = None  # the env-to-module connector built, if any (runner.obs_fn)
        mapping = None
        if is_jaxmarl(config.env) and stateless_only:
            raise ValueError(f"{stateless_only} does not train on JaxMARL envs: their agents act through a MultiRLModule, "
                             f"which PPO's learners train; expected PPOConfig for {config.env!r}")
        if is_jaxmarl(config.env):  # policies mapped once from the agent ids (all to default_policy without multi_agent())
            env = make_jaxmarl(config.env, config.env_config)
            mapping = resolve_mapping(config, list(env.agents))
            self.runner: Any = JaxMarlRunner(env, config.num_envs_per_env_runner, mapping, config.policy_ids(),
                                             global_state=reads_global_state(config))
        else:
            env, env_params = make_gymnax(config.env, config.env_config)
            self.runner = JaxEnvRunner(env, env_params, config.num_envs_per_env_runner, **action_settings(config))
        obs_space, act_space = self.runner.observation_space, self.runner.action_space
        if config.env_to_module_connector is not None:
            connector = config.env_to_module_connector(env)
            connector.set_spaces(obs_space, act_space)
            obs_space = connector.observation_space
            self.runner.obs_fn = self.connector = connector
        self.spec = multi_spec(config, obs_space, act_space) if mapping else config.module_spec_for(obs_space, act_space)
        self.module = self.spec.build()
        modules = {mid: self.module[mid] for mid in self.runner.module_ids} if mapping else {DEFAULT_MODULE_ID: self.module}
        required = config.get_default_learner_class().rl_module_required_apis()
        for mid, module in modules.items():
            if stateless_only or mapping:
                reject_stateful(module, stateless_only or "multi-agent training in one jit")
            check_required_apis(module, required, mid)
        self.learner = make_learner(self.module, config, getattr(self.runner, "num_rows", self.runner.num_envs))
        # Data-parallel learners: each device steps its share of the envs and learns on its rows.
        self.data_parallel = make_data_parallel(config)
        self.data_parallel.check_rows(config.num_envs_per_env_runner, "num_envs_per_env_runner",
                                      "each learner's device steps num_envs_per_env_runner / num_learners envs")
        self.steps = int(steps if steps is not None else config.rollout_length())
        self.act_fn = self.module.phase_fn("exploration")
        self.runner_is_multi = mapping is not None
        self._with_t = takes_timestep(self.module)

    def init(self, rng: jax.Array) -> TrainState:
        k_params, k_env, k_next = jax.random.split(rng, 3)
        params = self.module.init_fn(k_params)
        runner = self.runner.reset(k_env, self.module.get_initial_state())
        dp = self.data_parallel
        return TrainState(dp.replicate(self.learner.init(params)), self._shard_envs(runner), dp.replicate(k_next),
                          jnp.zeros((), jnp.int32))

    def _shard_envs(self, runner: Any) -> Any:
        """The runner state's per-env leaves split over the learners' devices (not the module's initial state)."""
        return runner._replace(**{f: self.data_parallel.shard_rows(getattr(runner, f), setting="num_envs_per_env_runner")
                                  for f in runner._fields if f != "initial_state"})

    def params(self, state: TrainState) -> Any:
        """The params of a train state (the learner's)."""
        return self.learner.params(state.learner)

    def _step(self, state: TrainState) -> tuple[TrainState, dict, dict]:
        """One iteration: a rollout, then `learner.learn` on it: `(state, metrics, check tree)`;
        `iteration` adds "nonfinite_code"."""
        rng, k_roll, k_learn = jax.random.split(state.rng, 3)
        params = self.learner.params(state.learner)
        runner, traj, stats = self.runner.rollout(self.act_fn, params, state.runner, k_roll, self.steps,
                                                  t0=state.env_steps if self._with_t else None)
        runner = self._shard_envs(runner)
        traj = self.data_parallel.shard_rows(traj, axis=1, setting="num_envs_per_env_runner")
        env_steps = state.env_steps + self.steps * self.runner.num_envs
        learner, metrics = self.learner.learn(state.learner, Rollout(traj, self.runner.last_obs(runner), env_steps), k_learn)
        rows = next(iter(traj.values())) if self.runner_is_multi else traj  # a mapping's columns are per module
        checked = {"env observation": rows[Columns.OBS], "env reward": rows[Columns.REWARDS], "metrics": metrics,
                   "params": self.learner.params(learner)}
        episodes = stats["episodes"]
        metrics = dict(metrics)

        def mean(total: jax.Array) -> jax.Array:
            return jnp.where(episodes > 0, total / jnp.maximum(episodes, 1), jnp.nan)

        metrics["episode_return_mean"] = mean(stats["return_sum"])
        for mid, total in stats.get("module_return_sum", {}).items():  # multi-agent: the returns of its agents
            metrics[f"{MODULE_RETURN_PREFIX}{mid}"] = mean(total)
        metrics["num_episodes"] = episodes
        metrics["num_env_steps_sampled_lifetime"] = env_steps
        return TrainState(learner, runner, rng, env_steps), metrics, checked

    def train_fn(self, num_iterations: int) -> TrainFn:
        """The pure `train(rng) -> (params, metrics)` of `num_iterations` iterations (a `TrainFn`)."""
        return TrainFn(module=self.module, nonfinite_names=self.nonfinite_names, init=self.init,
                       iteration=self.iteration, num_iterations=int(num_iterations), params=self.params)
