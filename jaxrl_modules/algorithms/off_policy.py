"""Off-policy algorithms (DQN, SAC): gymnax (jitted iterations) or a gymnasium vector env
(host loop), both over the same module, learner and replay buffer functions."""

from __future__ import annotations

from collections import deque
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.algorithms import replay_buffer as rb
from jaxrl_modules.algorithms.algorithm import Algorithm
from jaxrl_modules.algorithms.env_runner import build_connector, evaluate_policy, make_vector_env, true_next_obs
from jaxrl_modules.algorithms.registry import is_gymnax, make_env
from jaxrl_modules.apis import check_required_apis
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns
from jaxrl_modules.spaces import space_zeros

STEPS_PER_TRAIN = 1000  # env steps sampled per `train()` call (RLlib's min_sample_timesteps_per_iteration)


class OffPolicyAlgorithm(Algorithm):
    """Each `train()` samples about 1000 env steps; every sampling step adds to the replay buffer and
    (after `num_steps_sampled_before_learning_starts`) takes one gradient step."""

    def _setup(self) -> None:
        cfg = self.config
        if cfg.is_multi_agent:
            raise ValueError(f"{type(self).__name__} supports single-agent configs")
        if is_gymnax(cfg.env):
            from jaxrl_modules.algorithms.off_policy_jax import JaxOffPolicy

            self.mode = "jax"
            self.jax_algo = JaxOffPolicy(cfg)
            self.module, self.learner = self.jax_algo.module, self.jax_algo.learner
            self.state = jax.jit(self.jax_algo.init)(jax.random.key(cfg.seed))
            per_iter = self.jax_algo.steps * cfg.num_envs_per_env_runner
            n = max(1, STEPS_PER_TRAIN // per_iter)
            self._run = jax.jit(lambda s: jax.lax.scan(lambda c, _: self.jax_algo.iteration(c), s, None, length=n))
            self._last_return = float("nan")
            return
        self.mode = "host"
        probe = make_env(cfg.env, cfg.env_config)
        self.connector = build_connector(cfg, probe, probe.observation_space, probe.action_space)
        obs_space = self.connector.observation_space if self.connector else probe.observation_space
        spec = cfg.module_spec_for(obs_space, probe.action_space)
        probe.close()
        self.module = spec.build()
        check_required_apis(self.module, cfg.get_default_learner_class().rl_module_required_apis(), DEFAULT_MODULE_ID)
        self.learner = cfg.get_default_learner_class()(self.module, cfg)
        n = cfg.num_envs_per_env_runner
        self.envs = make_vector_env(cfg)
        self.obs, _ = self.envs.reset(seed=cfg.seed)
        self.episode_returns = np.zeros(n)
        self.completed: deque = deque(maxlen=100)
        self.env_steps = 0
        rng = jax.random.key(cfg.seed)
        params = self.module.init(jax.random.fold_in(rng, 1))
        obs0 = self._connect(self.obs[:1])[0]
        example = {Columns.OBS: obs0, Columns.ACTIONS: space_zeros(self.module.action_space, ()), Columns.REWARDS: jnp.zeros(()),
                   Columns.NEXT_OBS: obs0, Columns.TERMINATEDS: jnp.zeros((), bool)}
        capacity = int(cfg.replay_buffer_config.get("capacity", 50000))
        self.host_state = {"learner": self.learner.init(params), "rng": rng,
                           "buffer": rb.init_buffer({**example, "discounts": jnp.zeros(())}, capacity),
                           "nstep": rb.init_nstep(example, getattr(cfg, "n_step", 1), n)}
        explore = self.module.phase_fn("exploration")
        connect = self._connect
        self._act = jax.jit(lambda p, obs, k, t: explore(p, {Columns.OBS: connect(obs)}, k, t=t)[Columns.ACTIONS])

        def add_and_learn(state, transitions, learn):
            transitions = dict(transitions)
            transitions[Columns.OBS] = connect(transitions[Columns.OBS])
            transitions[Columns.NEXT_OBS] = connect(transitions[Columns.NEXT_OBS])
            nstep, transitions, valid = rb.nstep_push(state["nstep"], transitions, cfg.gamma, Columns.OBS, Columns.ACTIONS,
                                                      Columns.REWARDS, Columns.TERMINATEDS, Columns.NEXT_OBS)
            buffer = rb.add(state["buffer"], transitions, valid)
            rng, k, k_update = jax.random.split(state["rng"], 3)
            new, metrics = self.learner.update(state["learner"], rb.sample(buffer, k, cfg.batch_size()), k_update)
            learner = jax.tree_util.tree_map(lambda a, b: jnp.where(learn, a, b), new, state["learner"])
            return {"learner": learner, "buffer": buffer, "rng": rng, "nstep": nstep}, metrics

        self._add_and_learn = jax.jit(add_and_learn)

    def _connect(self, obs: Any) -> Any:
        return self.connector(obs) if self.connector is not None else obs

    def training_step(self) -> dict:
        cfg = self.config
        if self.mode == "jax":
            self.state, metrics = self._run(self.state)
            metrics = jax.device_get(metrics)
            ended = metrics["num_episodes"] > 0
            if ended.any():
                r = metrics["episode_return_mean"][ended]
                self._last_return = float(np.sum(r * metrics["num_episodes"][ended]) / metrics["num_episodes"][ended].sum())
            return {"env_runners": {"episode_return_mean": self._last_return,
                                    "num_episodes": int(metrics["num_episodes"].sum())},
                    "num_env_steps_sampled_lifetime": int(metrics["num_env_steps_sampled_lifetime"][-1]),
                    "learners": {DEFAULT_MODULE_ID: {k: float(np.nanmean(v)) for k, v in metrics.items()
                                                     if k not in ("episode_return_mean", "num_episodes",
                                                                  "num_env_steps_sampled_lifetime")}}}
        metrics = {}
        n = cfg.num_envs_per_env_runner
        for _ in range(max(1, STEPS_PER_TRAIN // n)):
            state = self.host_state
            key = jax.random.fold_in(state["rng"], self.env_steps)
            actions = np.asarray(self._act(state["learner"].params, self.obs, key, self.env_steps))
            next_obs, reward, term, trunc, info = self.envs.step(actions)
            true_next = true_next_obs(next_obs, info)
            transitions = {Columns.OBS: self.obs, Columns.ACTIONS: actions,
                           Columns.REWARDS: reward.astype(np.float32), Columns.NEXT_OBS: true_next,
                           Columns.TERMINATEDS: term}
            self.env_steps += n
            learn = self.env_steps >= cfg.num_steps_sampled_before_learning_starts
            self.host_state, metrics = self._add_and_learn(state, transitions, learn)
            self.episode_returns += reward
            for i in np.flatnonzero(term | trunc):
                self.completed.append(float(self.episode_returns[i]))
                self.episode_returns[i] = 0.0
            self.obs = next_obs
        mean = float(np.mean(self.completed)) if self.completed else float("nan")
        return {"env_runners": {"episode_return_mean": mean, "num_episodes": len(self.completed)},
                "num_env_steps_sampled_lifetime": self.env_steps,
                "learners": {DEFAULT_MODULE_ID: {k: float(v) for k, v in jax.device_get(metrics).items()}}}

    def evaluate(self, episodes: int | None = None) -> dict:
        if self.mode == "jax":
            raise ValueError(f"evaluate() rolls out gymnasium envs; this {type(self).__name__} trains on a gymnax env")
        returns = evaluate_policy(self.config, self.module, self._params(), episodes or self.config.evaluation_duration)
        return {"env_runners": {"episode_return_mean": float(np.mean(returns)), "episode_returns": returns}}

    def _params(self) -> Any:
        return self.state.learner.params if self.mode == "jax" else self.host_state["learner"].params

    def _set_params(self, params: Any) -> None:
        if self.mode == "jax":
            self.state = self.state._replace(learner=self.state.learner._replace(params=params))
        else:
            self.host_state["learner"] = self.host_state["learner"]._replace(params=params)

    def _state(self) -> Any:
        if self.mode == "jax":
            return self.state
        return {**self.host_state, "env_steps": np.asarray(self.env_steps, np.int64)}

    def _set_state(self, state: Any) -> None:
        if self.mode == "jax":
            self.state = state
        else:
            self.env_steps = int(state.pop("env_steps"))
            self.host_state = state
