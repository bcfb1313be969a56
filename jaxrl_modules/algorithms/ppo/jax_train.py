"""PPO fully inside `jax.jit` over gymnax envs: rollout scan, GAE, update scan (PureJaxRL style)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl_modules.algorithms.action_transform import action_settings
from jaxrl_modules.algorithms.env_runner import reject_env_runners
from jaxrl_modules.algorithms.jax_env_runner import JaxEnvRunner, RunnerState
from jaxrl_modules.algorithms.nonfinite import CheckedIteration
from jaxrl_modules.algorithms.ppo.learner import LearnerState
from jaxrl_modules.algorithms.ppo.postprocess import sequence_batch, sequence_minibatches, single_agent_batch
from jaxrl_modules.algorithms.train_fn import TrainFn
from jaxrl_modules.envs.registry import is_gymnax, make_gymnax
from jaxrl_modules.columns import Columns


class TrainState(NamedTuple):
    learner: LearnerState
    runner: RunnerState
    rng: jax.Array
    env_steps: jax.Array


class JaxPPO(CheckedIteration):
    """The pieces of all-in-jit PPO for one config: module, learner, runner, pure functions."""

    def __init__(self, config: Any):
        """`config` is a PPOConfig (not imported: the config imports this module to build it)."""
        from jaxrl_modules.apis import check_required_apis

        if not is_gymnax(config.env):
            raise ValueError(f"All-in-jit training needs a gymnax env ('gymnax:<id>'); got {config.env!r}")
        reject_env_runners(config, "the all-in-jit gymnax loop")
        if config.is_multi_agent:
            raise ValueError("All-in-jit training supports single-agent configs; use the host loop for multi_agent()")
        self.config = config
        env, env_params = make_gymnax(config.env, config.env_config)
        self.runner = JaxEnvRunner(env, env_params, config.num_envs_per_env_runner, **action_settings(config))
        obs_space, act_space = self.runner.observation_space, self.runner.action_space
        self.connector: Any = None  # the env-to-module connector built, if any (runner.obs_fn)
        connector = None
        if config.env_to_module_connector is not None:
            connector = config.env_to_module_connector(env)
            connector.set_spaces(obs_space, act_space)
            obs_space = connector.observation_space
            self.runner.obs_fn = self.connector = connector
        self.spec = config.module_spec_for(obs_space, act_space)
        self.module = self.spec.build()
        check_required_apis(self.module, config.get_default_learner_class().rl_module_required_apis(), "default_policy")
        self.learner = config.get_default_learner_class()(self.module, config)
        self.steps = config.rollout_length()
        self.act_fn = self.module.phase_fn("exploration")

    def init(self, rng: jax.Array) -> TrainState:
        k_params, k_env, k_next = jax.random.split(rng, 3)
        params = self.module.init_fn(k_params)
        runner = self.runner.reset(k_env, self.module.get_initial_state())
        return TrainState(self.learner.init(params), runner, k_next, jnp.zeros((), jnp.int32))

    def _step(self, state: TrainState) -> tuple[TrainState, dict, dict]:
        """One PPO iteration: `(state, metrics, check tree)`; `iteration` adds "nonfinite_code"."""
        rng, k_roll, k_upd = jax.random.split(state.rng, 3)
        params = state.learner.params
        runner, traj, stats = self.runner.rollout(self.act_fn, params, state.runner, k_roll, self.steps)
        last_obs = self.runner.obs_fn(runner.obs)
        if self.module.is_stateful():
            seq_len = self.module.config().max_seq_len
            batch = sequence_batch(self.learner, params, traj, last_obs, self.config, seq_len)
            n_mb = sequence_minibatches(self.config, self.steps, self.config.num_envs_per_env_runner)
            learner, metrics = self.learner.update(state.learner, batch, k_upd, num_minibatches=n_mb)
        else:
            batch = single_agent_batch(self.learner, params, traj, last_obs, self.config)
            learner, metrics = self.learner.update(state.learner, batch, k_upd)
        env_steps = state.env_steps + self.steps * self.config.num_envs_per_env_runner
        checked = {"env observation": traj[Columns.OBS], "env reward": traj[Columns.REWARDS], "metrics": metrics,
                   "params": learner.params}
        metrics = dict(metrics)
        metrics["episode_return_mean"] = jnp.where(stats["episodes"] > 0, stats["return_sum"] / jnp.maximum(stats["episodes"], 1),
                                                  jnp.nan)
        metrics["num_episodes"] = stats["episodes"]
        metrics["num_env_steps_sampled_lifetime"] = env_steps
        return TrainState(learner, runner, rng, env_steps), metrics, checked


def make_train_fn(config: Any, num_iterations: int) -> TrainFn:
    """The pure `train(rng) -> (params, metrics)` of `num_iterations` iterations (a `TrainFn`), metrics
    with a leading iteration axis, incl. the non-finite keys of `scan_with_first_nonfinite`. `config`
    (validated, `total_iterations` set where a schedule needs it) is read, never changed."""
    ppo = JaxPPO(config)
    return TrainFn(module=ppo.module, nonfinite_names=ppo.nonfinite_names, init=ppo.init, iteration=ppo.iteration,
                   num_iterations=int(num_iterations))
