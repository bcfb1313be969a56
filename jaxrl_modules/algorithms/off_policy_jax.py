"""Off-policy training (DQN, SAC) fully inside `jax.jit` over gymnax envs: sample, store in the
replay buffer, learn."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl_modules.algorithms import replay_buffer as rb
from jaxrl_modules.algorithms.action_transform import action_settings
from jaxrl_modules.algorithms.jax_env_runner import JaxEnvRunner, RunnerState
from jaxrl_modules.algorithms.nonfinite import CheckedIteration
from jaxrl_modules.algorithms.train_fn import TrainFn
from jaxrl_modules.algorithms.env_runner import reject_env_runners, reject_stateful
from jaxrl_modules.envs.registry import is_gymnax, make_gymnax
from jaxrl_modules.apis import check_required_apis
from jaxrl_modules.columns import Columns
from jaxrl_modules.spaces import space_zeros


class OffPolicyTrainState(NamedTuple):
    learner: Any
    buffer: rb.ReplayBufferState
    nstep: rb.NStepWindow
    runner: RunnerState
    rng: jax.Array
    env_steps: jax.Array


class JaxOffPolicy(CheckedIteration):
    def __init__(self, config: Any):
        if not is_gymnax(config.env):
            raise ValueError(f"All-in-jit training needs a gymnax env ('gymnax:<id>'); got {config.env!r}")
        reject_env_runners(config, "the all-in-jit gymnax loop")
        self.config = config
        env, env_params = make_gymnax(config.env, config.env_config)
        self.runner = JaxEnvRunner(env, env_params, config.num_envs_per_env_runner, **action_settings(config))
        self.spec = config.module_spec_for(self.runner.observation_space, self.runner.action_space)
        self.module = self.spec.build()
        reject_stateful(self.module, type(config).__name__.removesuffix("Config"))
        check_required_apis(self.module, config.get_default_learner_class().rl_module_required_apis(), "default_policy")
        self.learner = config.get_default_learner_class()(self.module, config)
        self.explore = self.module.phase_fn("exploration")
        self.steps = int(config.rollout_length() if config.rollout_fragment_length != "auto" else 1)

    def init(self, rng: jax.Array) -> OffPolicyTrainState:
        k_params, k_env, k_next = jax.random.split(rng, 3)
        params = self.module.init_fn(k_params)
        runner = self.runner.reset(k_env)
        example = {Columns.OBS: runner.obs[0], Columns.ACTIONS: space_zeros(self.module.action_space, ()),
                   Columns.REWARDS: jnp.zeros(()), Columns.NEXT_OBS: runner.obs[0],
                   Columns.TERMINATEDS: jnp.zeros((), bool)}
        nstep = rb.init_nstep(example, getattr(self.config, "n_step", 1), self.runner.num_envs)
        buffer = rb.init_buffer({**example, "discounts": jnp.zeros(())},
                                int(self.config.replay_buffer_config.get("capacity", 50000)))
        return OffPolicyTrainState(self.learner.init(params), buffer, nstep, runner, k_next, jnp.zeros((), jnp.int32))

    def _env_step(self, carry: tuple, key: jax.Array) -> tuple:
        params, runner, env_steps, nstep = carry
        k_act, k_env = jax.random.split(key)
        out = self.explore(params, {Columns.OBS: runner.obs}, k_act, t=env_steps)
        env, n = self.runner, self.runner.num_envs
        next_obs, env_state, reward, term, trunc, _ = jax.vmap(env.env.step, (0, 0, 0, None))(
            jax.random.split(k_env, n), runner.env_state, env.to_env(out[Columns.ACTIONS]), env.env_params)
        done = term | trunc
        ret = runner.episode_return + reward
        step = {Columns.OBS: runner.obs, Columns.ACTIONS: out[Columns.ACTIONS], Columns.REWARDS: reward,
                Columns.NEXT_OBS: next_obs, Columns.TERMINATEDS: done}
        nstep, transition, valid = rb.nstep_push(nstep, step, self.config.gamma, Columns.OBS, Columns.ACTIONS,
                                                 Columns.REWARDS, Columns.TERMINATEDS, Columns.NEXT_OBS)
        transition.update({"valid": valid, "ended_return": jnp.where(done, ret, 0.0), "ended": done,
                           "env_obs": next_obs, "env_reward": reward})
        runner = runner._replace(obs=next_obs, env_state=env_state, episode_return=jnp.where(done, 0.0, ret),
                                 episode_length=jnp.where(done, 0, runner.episode_length + 1))
        return (params, runner, env_steps + n, nstep), transition

    def _step(self, state: OffPolicyTrainState) -> tuple[OffPolicyTrainState, dict, dict]:
        """Sample, store, learn: `(state, metrics, check tree)`; `iteration` adds "nonfinite_code"."""
        cfg = self.config
        rng, k_roll, k_sample, k_update = jax.random.split(state.rng, 4)
        (_, runner, env_steps, nstep), traj = jax.lax.scan(
            self._env_step, (state.learner.params, state.runner, state.env_steps, state.nstep),
            jax.random.split(k_roll, self.steps))
        ended_return, ended, valid = traj.pop("ended_return"), traj.pop("ended"), traj.pop("valid")
        env_obs, env_reward = traj.pop("env_obs"), traj.pop("env_reward")
        flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), traj)
        buffer = rb.add(state.buffer, flat, valid.reshape(-1))
        batch = rb.sample(buffer, k_sample, cfg.batch_size())
        learn = env_steps >= cfg.num_steps_sampled_before_learning_starts
        new_learner, metrics = self.learner.update(state.learner, batch, k_update)
        learner = jax.tree_util.tree_map(lambda a, b: jnp.where(learn, a, b), new_learner, state.learner)
        checked = {"env observation": env_obs, "env reward": env_reward,
                   "metrics": jax.tree_util.tree_map(lambda m: jnp.where(learn, m, jnp.zeros_like(m)), metrics),
                   "params": learner.params}
        episodes = ended.sum()
        metrics = dict(metrics)
        metrics["episode_return_mean"] = jnp.where(episodes > 0, ended_return.sum() / jnp.maximum(episodes, 1), jnp.nan)
        metrics["num_episodes"] = episodes
        metrics["num_env_steps_sampled_lifetime"] = env_steps
        return OffPolicyTrainState(learner, buffer, nstep, runner, rng, env_steps), metrics, checked


def make_train_fn(config: Any, num_iterations: int) -> TrainFn:
    """The pure `train(rng) -> (params, metrics)` of `num_iterations` iterations (a `TrainFn`), metrics
    with a leading iteration axis, incl. the non-finite keys of `scan_with_first_nonfinite`. `config`
    (validated) is read, never changed."""
    algo = JaxOffPolicy(config)
    return TrainFn(module=algo.module, nonfinite_names=algo.nonfinite_names, init=algo.init, iteration=algo.iteration,
                   num_iterations=int(num_iterations))
