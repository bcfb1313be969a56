"""The off-policy (DQN, SAC) host-loop driver over a gymnasium vector env: every sampling step acts
with the jitted exploration forward, steps the envs, and (one jitted call) pushes the transitions
through the n-step window into the replay buffer and takes one gradient step."""

from __future__ import annotations

from collections import deque
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.algorithms import replay_buffer as rb
from jaxrl_modules.algorithms.action_transform import env_action_fn
from jaxrl_modules.algorithms.env_runner import (EpisodeReturns, build_connector, evaluate_policy, make_vector_env,
                                                 reject_stateful, true_next_obs)
from jaxrl_modules.algorithms.nonfinite import (NonFiniteError, carry_first_nonfinite, check_rows, nonfinite_code,
                                                quantity_names)
from jaxrl_modules.apis import check_required_apis
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns
from jaxrl_modules.envs.registry import make_env
from jaxrl_modules.spaces import space_zeros

_HOST_KEPT = ("the algorithm keeps its learner state (params, optimizer state, target params) and RNG from before this "
              "iteration; its replay buffer and env counters keep what was sampled")


class OffPolicyHostDriver:
    """State: `host_state` (`{"learner", "rng", "buffer", "nstep"}`) and `env_steps` (checkpointed
    together); the envs, their current `obs` and running `episode_returns` live on the host."""

    def __init__(self, config: Any, algorithm: str, steps_per_train: int):
        """`config` is a validated DQN/SAC config, `algorithm` its name (for errors); each `train()`
        samples about `steps_per_train` env steps. A failed build closes the envs it had opened."""
        self.config, self.envs = config, None
        self.steps_per_train = int(steps_per_train)
        try:
            self._build(algorithm)
        except BaseException:
            self.stop()  # a failed build leaves no env (or env worker process) behind
            raise

    def _build(self, algorithm: str) -> None:
        cfg = self.config
        probe = make_env(cfg.env, cfg.env_config)
        try:
            self.connector = build_connector(cfg, probe, probe.observation_space, probe.action_space)
            obs_space = self.connector.observation_space if self.connector else probe.observation_space
            spec = cfg.module_spec_for(obs_space, probe.action_space)
            self._to_env = env_action_fn(cfg, probe.action_space)  # module actions -> env actions (unsquash/clip)
        finally:
            probe.close()
        self.module = spec.build()
        reject_stateful(self.module, algorithm)
        check_required_apis(self.module, cfg.get_default_learner_class().rl_module_required_apis(), DEFAULT_MODULE_ID)
        self.learner = cfg.get_default_learner_class()(self.module, cfg)
        self.envs = make_vector_env(cfg)  # num_env_runners > 0: in worker processes
        n = self.envs.num_envs
        self.obs, _ = self.envs.reset(seed=cfg.seed)
        self.episode_returns = np.zeros(n)
        self.completed: deque = deque(maxlen=100)  # the last 100 returns (a history; not episode_return_mean)
        self.returns = EpisodeReturns()
        self.module_returns: Optional[dict] = None
        self._finished: list = []  # returns of the episodes that ended in this train() call
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
        self._add_and_learn = jax.jit(self._add_and_learn_fn)

    def _add_and_learn_fn(self, state: dict, transitions: dict, learn: Any, first: tuple, step: Any) -> tuple:
        """Stores one sampling step's transitions and (when `learn`) takes one gradient step (traced)."""
        cfg, connect = self.config, self._connect
        transitions = dict(transitions)
        transitions[Columns.OBS] = connect(transitions[Columns.OBS])
        transitions[Columns.NEXT_OBS] = connect(transitions[Columns.NEXT_OBS])
        nstep, transitions, valid = rb.nstep_push(state["nstep"], transitions, cfg.gamma, Columns.OBS, Columns.ACTIONS,
                                                  Columns.REWARDS, Columns.TERMINATEDS, Columns.NEXT_OBS)
        buffer = rb.add(state["buffer"], transitions, valid)
        rng, k, k_update = jax.random.split(state["rng"], 3)
        new, metrics = self.learner.update(state["learner"], rb.sample(buffer, k, cfg.batch_size()), k_update)
        learner = jax.tree_util.tree_map(lambda a, b: jnp.where(learn, a, b), new, state["learner"])
        checked = {"metrics": jax.tree_util.tree_map(lambda m: jnp.where(learn, m, jnp.zeros_like(m)), metrics),
                   "params": learner.params}
        first = carry_first_nonfinite(first, nonfinite_code(checked), step)  # fetched once per train()
        return {"learner": learner, "buffer": buffer, "rng": rng, "nstep": nstep}, metrics, first

    def _connect(self, obs: Any) -> Any:
        return self.connector(obs) if self.connector is not None else obs

    def training_step(self, iteration: int) -> dict:
        """About `steps_per_train` env steps. Raises `NonFiniteError` when an env observation or reward,
        a loss or a param is NaN or inf, keeping the learner state (params, optimizer state, target
        params) and RNG from before this call, while the replay buffer and env counters keep what was
        sampled. `episode_return_mean` is carried as in every loop (`EpisodeReturns`)."""
        metrics = {}
        n = self.envs.num_envs
        start = {"learner": self.host_state["learner"], "rng": self.host_state["rng"]}
        first = (jnp.full((), -1, jnp.int32),) * 2
        self._finished = []
        try:
            for t in range(max(1, self.steps_per_train // n)):
                metrics, first, stop = self._host_step(t, metrics, first)
                if stop:  # a learn step went non-finite: raised below, before acting on its params
                    break
        except NonFiniteError as err:  # an earlier non-finite loss or param is the cause, if there was one
            self._raise_host(first, metrics, start, iteration)
            self.host_state = {**self.host_state, **start}
            raise err.at_iteration(iteration, _HOST_KEPT) from None
        metrics, first = jax.device_get((metrics, first))
        self._raise_host(first, metrics, start, iteration)
        return {"env_runners": self.returns.update(self._finished),
                "num_env_steps_sampled_lifetime": self.env_steps,
                "learners": {DEFAULT_MODULE_ID: {k: float(v) for k, v in metrics.items()}}}

    def _host_step(self, t: int, metrics: dict, first: tuple) -> tuple:
        """One sampling step of every env, stored and learned from; `(metrics, first, stop)`. Raises
        `NonFiniteError` before a NaN/inf observation is acted on, a NaN/inf action reaches the env,
        or a reward is stored; `stop` when the previous learn step went non-finite (`first`, fetched
        with the actions that wait for that step anyway), before the env is stepped again."""
        cfg, n = self.config, self.envs.num_envs
        state = self.host_state
        key = jax.random.fold_in(state["rng"], self.env_steps)
        check_rows({"env observation": self.obs}, step=t)
        actions, first = jax.device_get((self._act(state["learner"].params, self.obs, key, self.env_steps), first))
        if int(first[1]) >= 0:
            return metrics, first, True
        actions = np.asarray(actions)
        if np.issubdtype(actions.dtype, np.inexact):
            check_rows({"actions": actions}, step=t)
        next_obs, reward, term, trunc, info = self.envs.step(self._to_env(actions))
        check_rows({"env reward": reward}, step=t)
        true_next = true_next_obs(next_obs, info)
        transitions = {Columns.OBS: self.obs, Columns.ACTIONS: actions,
                       Columns.REWARDS: reward.astype(np.float32), Columns.NEXT_OBS: true_next,
                       Columns.TERMINATEDS: term}
        self.env_steps += n
        learn = self.env_steps >= cfg.num_steps_sampled_before_learning_starts
        self.host_state, metrics, first = self._add_and_learn(state, transitions, learn, first, t)
        self.episode_returns += reward
        for i in np.flatnonzero(term | trunc):
            self.completed.append(float(self.episode_returns[i]))
            self._finished.append(float(self.episode_returns[i]))
            self.episode_returns[i] = 0.0
        self.obs = next_obs
        return metrics, first, False

    def _raise_host(self, first: tuple, metrics: dict, start: dict, iteration: int) -> None:
        """On a non-finite loss or param (`first` from `add_and_learn`; `metrics` any step's learner
        metrics, for the names), restores the learner state and RNG of the start of this iteration
        and raises."""
        step, code = (int(x) for x in jax.device_get(first))
        if code < 0:
            return
        names = quantity_names({"metrics": metrics, "params": self.host_state["learner"].params})
        self.host_state = {**self.host_state, **start}
        raise NonFiniteError(names[code], iteration, f"first at sampling step {step} of this iteration", _HOST_KEPT)

    def evaluate(self, episodes: int) -> list[float]:
        return evaluate_policy(self.config, self.module, self.params(), episodes)

    def params(self) -> Any:
        return self.host_state["learner"].params

    def with_params(self, params: Any) -> None:
        self.host_state["learner"] = self.host_state["learner"]._replace(params=params)

    def state(self) -> dict:
        return {**self.host_state, "env_steps": np.asarray(self.env_steps, np.int64)}

    def set_state(self, state: dict) -> None:
        state = dict(state)  # the caller's dict stays as it is
        self.env_steps = int(state.pop("env_steps"))
        self.host_state = state

    def env_info(self) -> dict:
        return {"connector": self.connector, "agent_to_module": None}

    def stop(self) -> None:
        """Closes the envs (and their worker processes, `num_env_runners > 0`); idempotent."""
        if self.envs is not None:
            self.envs.close()
