"""PPO: one algorithm object over three samplers, all with the same modules and learner:
gymnax (each iteration one jitted function), a gymnasium vector env (host loop), and a
multi-agent env (host loop, one MultiRLModule, one optimizer)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxrl_modules.algorithms.algorithm import Algorithm
from jaxrl_modules.algorithms.env_runner import (EpisodeReturns, GymEnvRunner, evaluate_policy, make_act_fn,
                                                 reject_env_runners)
from jaxrl_modules.algorithms.multi_agent_env_runner import MultiAgentEnvRunner, agent_spaces, is_multi_agent_env
from jaxrl_modules.algorithms.nonfinite import NonFiniteError, at_iteration, describe_named, nonfinite_code, raise_for_code
from jaxrl_modules.algorithms.ppo.learner import LearnerState
from jaxrl_modules.algorithms.ppo.postprocess import (build_train_batch, sequence_batch, sequence_minibatches,
                                                     single_agent_batch)
from jaxrl_modules.envs.registry import is_gymnax, make_env
from jaxrl_modules.apis import check_required_apis
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns
from jaxrl_modules.multi_rl_module import MultiRLModule, MultiRLModuleSpec


class PPO(Algorithm):
    """Proximal Policy Optimization (RLlib's loss, defaults and result keys)."""

    # ----------------------------------------------------------------- setup
    def _setup(self) -> None:
        cfg = self.config
        self._returns = EpisodeReturns()
        self.runner: Any = None
        if is_gymnax(cfg.env):
            from jaxrl_modules.algorithms.ppo.jax_train import JaxPPO  # rejects num_env_runners > 0

            self.mode = "jax"
            self.jax_ppo = JaxPPO(cfg)
            self.module = self.jax_ppo.module
            self.learner = self.jax_ppo.learner
            self.train_state = jax.jit(self.jax_ppo.init)(jax.random.key(cfg.seed))
            self._iteration_fn = jax.jit(self.jax_ppo.iteration)
            self._eval_cache: dict = {}  # jitted evaluation rollouts, built once per (episodes, stochastic)
            return
        probe = make_env(cfg.env, cfg.env_config)
        multi_env = is_multi_agent_env(probe)
        if hasattr(probe, "close"):
            probe.close()
        try:
            if cfg.is_multi_agent or multi_env:
                reject_env_runners(cfg, "the multi-agent host loop")
                self._setup_multi_agent()
            else:
                self._setup_single_agent()
            self.rng = jax.random.key(cfg.seed)
            self.learner_state = self.learner.init(self.module.init(jax.random.fold_in(self.rng, 1)))
        except BaseException:
            self.stop()  # a failed build leaves no env (or env worker process) behind
            raise
        self._update_fn = jax.jit(self._update)

    def _setup_single_agent(self) -> None:
        cfg = self.config
        self.mode = "host"
        self.runner = GymEnvRunner(cfg)
        spec = cfg.module_spec_for(self.runner.observation_space, self.runner.action_space)
        self.module = spec.build()
        check_required_apis(self.module, cfg.get_default_learner_class().rl_module_required_apis(), DEFAULT_MODULE_ID)
        self.learner = cfg.get_default_learner_class()(self.module, cfg)
        if self.module.is_stateful():
            self._check_sequence_settings()
            self.runner.set_initial_state(self.module.get_initial_state())
        self.act = make_act_fn(self.module, self.runner.connector)

    def _rollout_length(self) -> int:
        """Steps per env per iteration of the single-agent host loop: `rollout_fragment_length`, or
        "auto": the train batch over every env (`num_env_runners` x `num_envs_per_env_runner`)."""
        cfg = self.config
        if cfg.rollout_fragment_length == "auto":
            return max(1, cfg.batch_size() // self.runner.num_envs)
        return int(cfg.rollout_fragment_length)

    def _check_sequence_settings(self) -> None:
        """A stateful module trains on chunks of `max_seq_len` steps (`sequence_batch`, as the jit path):
        the rollout must split into whole chunks."""
        seq_len, steps = self.module.config().max_seq_len, self._rollout_length()
        if steps % seq_len:
            raise ValueError(
                f"rollout_fragment_length: a recurrent module (use_lstm) trains on sequences of max_seq_len={seq_len} "
                f"steps, so each env's rollout must be a multiple of {seq_len}; got {steps} steps per env "
                f"(rollout_fragment_length={self.config.rollout_fragment_length!r}, "
                f"{self.runner.num_envs} envs, train batch {self.config.batch_size()}): set "
                f"env_runners(rollout_fragment_length=k * {seq_len}) or a matching max_seq_len")

    def _multi_spec(self, obs_space: Any, act_space: Any) -> MultiRLModuleSpec:
        """Sub-specs with spaces filled in: observation spaces everywhere, action spaces for
        the policies (`multi_agent(policies=...)`, else the specs that name one, else all)."""
        cfg = self.config
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

    def _setup_multi_agent(self) -> None:
        cfg = self.config
        self.mode = "multi"
        env = make_env(cfg.env, cfg.env_config)
        if not is_multi_agent_env(env):
            raise ValueError(f"multi_agent() needs a multi-agent env (one with possible_agents); got {cfg.env!r}")
        obs_space, act_space = agent_spaces(env, list(env.possible_agents)[0])
        self.multi_spec = self._multi_spec(obs_space, act_space)
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
        self._module_returns = {mid: EpisodeReturns() for mid in self.policy_ids}
        fwd = self.module.phase_fn("exploration")
        self.act = jax.jit(lambda params, batch, rng, t: fwd(params, batch, jax.random.fold_in(rng, t)))

    def _stackable(self) -> bool:
        """Identical independent policies (a plain MultiRLModule) train through the stacked path."""
        if type(self.module) is not MultiRLModule or len(self.policy_ids) < 2 or set(self.policy_ids) != set(self.module.keys()):
            return False
        specs = self.module._specs()
        group = self.module._groups(self.policy_ids, None)
        return len(group) == 1 and all(specs[m].module_class is specs[self.policy_ids[0]].module_class for m in self.policy_ids)

    # ----------------------------------------------------------------- training
    def _update(self, state: LearnerState, traj: Any, last_obs: Any, rng: jax.Array) -> tuple:
        cfg, learner = self.config, self.learner
        if self.mode == "multi":
            T, A = traj[self.policy_ids[0]][Columns.REWARDS].shape
            flat = {}
            for mid in self.policy_ids:
                obs = traj[mid][Columns.OBS]
                flat[mid] = {Columns.OBS: jax.numpy.concatenate([obs.reshape((T * A,) + obs.shape[2:]), last_obs[mid]])}
            values = learner.values(state, flat)
            batch = {mid: build_train_batch(traj[mid], values[mid][: T * A].reshape(T, A), values[mid][T * A:],
                                            cfg.gamma, cfg.lambda_) for mid in self.policy_ids}
        else:
            connector = self.runner.connector
            last = connector(last_obs) if connector is not None else last_obs
            if Columns.STATE_IN in traj:  # a stateful module: the jit path's sequence batching
                T, N = traj[Columns.REWARDS].shape[:2]
                batch = sequence_batch(learner, learner.params_of(state), traj, last, cfg, self.module.config().max_seq_len)
                state, metrics = learner.update(state, batch, rng, num_minibatches=sequence_minibatches(cfg, T, N))
                return state, metrics, nonfinite_code({"metrics": metrics, "params": learner.params_of(state)})
            batch = single_agent_batch(learner, learner.params_of(state), traj, last, cfg)
        state, metrics = learner.update(state, batch, rng)
        return state, metrics, nonfinite_code({"metrics": metrics, "params": learner.params_of(state)})

    def training_step(self) -> dict:
        """One iteration. Raises `NonFiniteError` (keeping the state from before the iteration) when
        an env observation or reward, a loss or a param is NaN or inf.

        `result["env_runners"]["episode_return_mean"]` is the mean return of the episodes that ended
        during this iteration, carried forward from the last iteration in which one ended when none did
        (NaN before the first); `num_episodes` counts the episodes that ended (0: carried). Multi-agent
        runs report an episode's return as the sum over its agents, and per module
        `module_episode_returns_mean` (the returns of the agents mapped to it) the same way."""
        cfg = self.config
        iteration = self.iteration + 1
        if self.mode == "jax":
            train_state, metrics = self._iteration_fn(self.train_state)
            metrics = jax.device_get(metrics)
            code = int(metrics.pop("nonfinite_code"))
            if code >= 0:
                name = self.jax_ppo.nonfinite_names[code]
                values = {"metrics": metrics, "params": train_state.learner.params}
                raise NonFiniteError(name, iteration, describe_named(name, values) or "inside the jitted iteration")
            self.train_state = train_state
            n = int(metrics["num_episodes"])
            return {"env_runners": self._returns.update_sum(float(metrics["episode_return_mean"]) * n if n else 0.0, n),
                    "num_env_steps_sampled_lifetime": int(metrics["num_env_steps_sampled_lifetime"]),
                    "learners": {DEFAULT_MODULE_ID: _floats(metrics, skip=("episode_return_mean", "num_episodes",
                                                                           "num_env_steps_sampled_lifetime"))}}
        rng, k_sample, k_update = jax.random.split(self.rng, 3)
        steps = self._rollout_length() if self.mode == "host" else max(1, cfg.batch_size() // len(self.runner.agents))
        with at_iteration(iteration):
            traj, last_obs, finished = self.runner.sample(self.act, self.learner.params_of(self.learner_state), k_sample, steps)
        learner_state, metrics, code = self._update_fn(self.learner_state, traj, last_obs, k_update)
        metrics, code = jax.device_get((metrics, code))
        raise_for_code(code, {"metrics": metrics, "params": self.learner.params_of(learner_state)}, iteration)
        self.learner_state, self.rng = learner_state, rng
        result = {"env_runners": self._returns.update(finished),
                  "num_env_steps_sampled_lifetime": int(self.runner.num_env_steps)}
        if self.mode == "multi":
            result["env_runners"]["module_episode_returns_mean"] = {
                mid: self._module_returns[mid].update(self.runner.finished_per_module[mid])["episode_return_mean"]
                for mid in self.policy_ids}
            result["learners"] = {mid: _floats(m) for mid, m in metrics.items()}
        else:
            result["learners"] = {DEFAULT_MODULE_ID: _floats(metrics)}
        return result

    def evaluate(self, episodes: int | None = None) -> dict:
        """Deterministic (forward_inference) returns of `evaluation_duration` (or `episodes`) complete
        episodes on fresh envs: gymnax envs in one jit (`jax_evaluate`), gymnasium envs in a host loop,
        multi-agent envs with each agent acting through its mapped module (an episode's return is the
        sum over its agents)."""
        episodes = self._evaluation_episodes(episodes)
        if self.mode == "jax":
            returns = self._evaluate_jax(episodes)
        elif self.mode == "multi":
            from jaxrl_modules.algorithms.multi_agent_env_runner import evaluate_multi_agent

            fwd = self.module.phase_fn("inference")
            returns = evaluate_multi_agent(self.config, lambda p, batch, key: fwd(p, batch, key), self._params(),
                                           self.policy_ids, episodes)
        else:
            returns = evaluate_policy(self.config, self.module, self._params(), episodes)
        return self._evaluation_result(returns, episodes)

    def _evaluate_jax(self, episodes: int, seed: int = 10_000) -> list:
        from jaxrl_modules.algorithms.jax_evaluate import evaluate_gymnax

        runner = self.jax_ppo.runner
        return evaluate_gymnax(runner.env, runner.env_params, self.module, self._params(), episodes, seed=seed,
                               obs_fn=runner.obs_fn, to_env=runner.to_env, cache=self._eval_cache)

    def stop(self) -> None:
        """Closes the host loop's envs (and their worker processes, `num_env_runners > 0`); idempotent."""
        runner = getattr(self, "runner", None)
        if runner is not None and hasattr(runner, "close"):
            runner.close()
        super().stop()

    # ----------------------------------------------------------------- state
    def _params(self) -> Any:
        return self.train_state.learner.params if self.mode == "jax" else self.learner.params_of(self.learner_state)

    def _set_params(self, params: Any) -> None:
        if self.mode == "jax":
            self.train_state = self.train_state._replace(learner=self.train_state.learner._replace(params=params))
        else:
            self.learner_state = self.learner.with_params(self.learner_state, params)

    def _state(self) -> Any:
        if self.mode == "jax":
            return self.train_state
        return {"learner": self.learner_state, "rng": self.rng,
                "env_steps": np.asarray(self.runner.num_env_steps, np.int64)}

    def _set_state(self, state: Any) -> None:
        if self.mode == "jax":
            self.train_state = state
            return
        self.learner_state, self.rng = state["learner"], state["rng"]
        self.runner.num_env_steps = int(state["env_steps"])


def _floats(metrics: dict, skip: tuple = ()) -> dict:
    return {k: float(v) for k, v in metrics.items() if k not in skip}
