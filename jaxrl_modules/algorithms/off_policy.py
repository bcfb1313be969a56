"""Off-policy algorithms (DQN, SAC): gymnax (jitted iterations) or a gymnasium vector env
(host loop), both over the same module, learner and replay buffer functions."""

from __future__ import annotations

from collections import deque
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.algorithms import replay_buffer as rb
from jaxrl_modules.algorithms.action_transform import env_action_fn
from jaxrl_modules.algorithms.algorithm import Algorithm
from jaxrl_modules.algorithms.env_runner import (EpisodeReturns, build_connector, evaluate_policy, make_vector_env,
                                                 reject_stateful, true_next_obs)
from jaxrl_modules.algorithms.nonfinite import (NonFiniteError, carry_first_nonfinite, check_rows, describe_named,
                                                nonfinite_code, quantity_names, scan_with_first_nonfinite)
from jaxrl_modules.envs.registry import is_gymnax, make_env
from jaxrl_modules.apis import check_required_apis
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns
from jaxrl_modules.spaces import space_zeros

STEPS_PER_TRAIN = 1000  # env steps sampled per `train()` call (RLlib's min_sample_timesteps_per_iteration)
_HOST_KEPT = ("the algorithm keeps its learner state (params, optimizer state, target params) and RNG from before this "
              "iteration; its replay buffer and env counters keep what was sampled")


class OffPolicyAlgorithm(Algorithm):
    """Each `train()` samples about 1000 env steps; every sampling step adds to the replay buffer and
    (after `num_steps_sampled_before_learning_starts`) takes one gradient step."""

    def _setup(self) -> None:
        try:
            self._build()
        except BaseException:
            self.stop()  # a failed build leaves no env (or env worker process) behind
            raise

    def stop(self) -> None:
        """Closes the host loop's envs (and their worker processes, `num_env_runners > 0`); idempotent."""
        envs = getattr(self, "envs", None)
        if envs is not None:
            envs.close()
        super().stop()

    def _build(self) -> None:
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
            self._run = jax.jit(lambda s: scan_with_first_nonfinite(self.jax_algo.iteration, s, n))
            self._eval_cache: dict = {}  # jitted evaluation rollouts, built once per (episodes, stochastic)
            self._returns = EpisodeReturns()
            return
        self.mode = "host"
        probe = make_env(cfg.env, cfg.env_config)
        self.connector = build_connector(cfg, probe, probe.observation_space, probe.action_space)
        obs_space = self.connector.observation_space if self.connector else probe.observation_space
        spec = cfg.module_spec_for(obs_space, probe.action_space)
        self._to_env = env_action_fn(cfg, probe.action_space)  # module actions -> env actions (unsquash/clip)
        probe.close()
        self.module = spec.build()
        reject_stateful(self.module, type(self).__name__)
        check_required_apis(self.module, cfg.get_default_learner_class().rl_module_required_apis(), DEFAULT_MODULE_ID)
        self.learner = cfg.get_default_learner_class()(self.module, cfg)
        self.envs = make_vector_env(cfg)  # num_env_runners > 0: in worker processes
        n = self.envs.num_envs
        self.obs, _ = self.envs.reset(seed=cfg.seed)
        self.episode_returns = np.zeros(n)
        self.completed: deque = deque(maxlen=100)  # the last 100 returns (a history; not episode_return_mean)
        self._returns = EpisodeReturns()
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

        def add_and_learn(state, transitions, learn, first, step):
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

        self._add_and_learn = jax.jit(add_and_learn)

    def _connect(self, obs: Any) -> Any:
        return self.connector(obs) if self.connector is not None else obs

    def training_step(self) -> dict:
        """About 1000 env steps. Raises `NonFiniteError` when an env observation or reward, a loss or a
        param is NaN or inf: the all-in-jit path keeps its whole state from before this call; the host
        loop keeps its learner state (params, optimizer state, target params) and RNG from before this
        call, while its replay buffer and env counters keep what was sampled.

        `result["env_runners"]["episode_return_mean"]` is the mean return of the episodes that ended
        during this call, carried forward from the last call in which one ended when none did (NaN
        before the first); `num_episodes` counts the episodes that ended (0: carried)."""
        cfg = self.config
        iteration = self.iteration + 1
        if self.mode == "jax":
            state, metrics = self._run(self.state)
            metrics = jax.device_get(metrics)
            first = int(metrics["first_nonfinite_iteration"][-1])
            if first >= 0:
                name = self.jax_algo.nonfinite_names[int(metrics["first_nonfinite_code"][-1])]
                inner = jax.tree_util.tree_map(lambda x: x[first], metrics)
                detail = describe_named(name, {"metrics": inner}) or "inside the jitted iteration"
                raise NonFiniteError(name, iteration, f"{detail} (jitted step {first + 1} of {len(metrics['num_episodes'])} "
                                     "in this iteration)", "the algorithm keeps its whole state from before this iteration")
            self.state = state
            for key in ("nonfinite_code", "first_nonfinite_iteration", "first_nonfinite_code"):
                metrics.pop(key)
            ended = metrics["num_episodes"] > 0
            total = float(np.sum(metrics["episode_return_mean"][ended] * metrics["num_episodes"][ended]))
            return {"env_runners": self._returns.update_sum(total, int(metrics["num_episodes"].sum())),
                    "num_env_steps_sampled_lifetime": int(metrics["num_env_steps_sampled_lifetime"][-1]),
                    "learners": {DEFAULT_MODULE_ID: {k: float(np.nanmean(v)) for k, v in metrics.items()
                                                     if k not in ("episode_return_mean", "num_episodes",
                                                                  "num_env_steps_sampled_lifetime")}}}
        metrics = {}
        n = self.envs.num_envs
        start = {"learner": self.host_state["learner"], "rng": self.host_state["rng"]}
        first = (jnp.full((), -1, jnp.int32),) * 2
        self._finished = []
        try:
            for t in range(max(1, STEPS_PER_TRAIN // n)):
                metrics, first, stop = self._host_step(t, metrics, first)
                if stop:  # a learn step went non-finite: raised below, before acting on its params
                    break
        except NonFiniteError as err:  # an earlier non-finite loss or param is the cause, if there was one
            self._raise_host(first, metrics, start, iteration)
            self.host_state = {**self.host_state, **start}
            raise err.at_iteration(iteration, _HOST_KEPT) from None
        metrics, first = jax.device_get((metrics, first))
        self._raise_host(first, metrics, start, iteration)
        return {"env_runners": self._returns.update(self._finished),
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
        """Host loop: on a non-finite loss or param (`first` from `add_and_learn`; `metrics` any step's
        learner metrics, for the names), restores the learner state and RNG of the start of this
        iteration and raises."""
        step, code = (int(x) for x in jax.device_get(first))
        if code < 0:
            return
        names = quantity_names({"metrics": metrics, "params": self.host_state["learner"].params})
        self.host_state = {**self.host_state, **start}
        raise NonFiniteError(names[code], iteration, f"first at sampling step {step} of this iteration", _HOST_KEPT)

    def evaluate(self, episodes: int | None = None) -> dict:
        """Deterministic (forward_inference) returns of `evaluation_duration` (or `episodes`) complete
        episodes on fresh envs: gymnax envs in one jit (`jax_evaluate`), gymnasium envs in a host loop."""
        episodes = self._evaluation_episodes(episodes)
        if self.mode == "jax":
            from jaxrl_modules.algorithms.jax_evaluate import evaluate_gymnax

            runner = self.jax_algo.runner
            returns = evaluate_gymnax(runner.env, runner.env_params, self.module, self._params(), episodes,
                                      to_env=runner.to_env, cache=self._eval_cache)
        else:
            returns = evaluate_policy(self.config, self.module, self._params(), episodes)
        return self._evaluation_result(returns, episodes)

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
