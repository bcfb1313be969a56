"""BC's driver: the offline loop. Each `training_step` samples a batch of recorded transitions and
takes one jitted update; there are no envs to step (evaluation builds fresh ones)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import jax
import numpy as np

from jaxrl_modules.algorithms.bc.offline import check_transitions, load_transitions
from jaxrl_modules.algorithms.env_runner import evaluate_policy
from jaxrl_modules.algorithms.nonfinite import nonfinite_code, raise_for_code
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns
from jaxrl_modules.envs.registry import make_env


class OfflineDriver:
    """State: `learner_state` and `rng` (checkpointed as `{"learner", "rng"}`); `data` holds the
    recorded transitions, `num_samples` how many rows were trained on."""

    def __init__(self, config: Any):
        cfg = self.config = config
        if cfg.input_ is None:
            raise ValueError("BC needs recorded transitions: call config.offline_data(input_=path)")
        self.data = load_transitions(cfg.input_)
        obs_space, act_space = self._spaces()
        check_transitions(self.data, obs_space, act_space)
        discrete = (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
        if isinstance(act_space, discrete) and self.data[Columns.ACTIONS].dtype.kind == "f":
            # whole numbers (checked above) stored as floats: the discrete distributions' logp takes ints
            self.data[Columns.ACTIONS] = self.data[Columns.ACTIONS].astype(np.int64)
        self.module = cfg.module_spec_for(obs_space, act_space).build()
        self.learner = cfg.get_default_learner_class()(self.module, cfg)
        self.rng = jax.random.key(cfg.seed)
        self.learner_state = self.learner.init(self.module.init(jax.random.fold_in(self.rng, 1)))
        self._update = jax.jit(self._checked_update)
        self.num_samples = 0
        self.returns, self.module_returns = None, None  # offline: no episodes end, none are carried

    def _spaces(self) -> tuple:
        """The env's spaces, or (no env) spaces read from the data: unbounded boxes, or Discrete
        for 1-d integer actions."""
        cfg = self.config
        if cfg.env is not None:
            env = make_env(cfg.env, cfg.env_config)
            spaces = env.observation_space, env.action_space
            env.close()
            return spaces
        obs = self.data[Columns.OBS]
        actions = self.data[Columns.ACTIONS]
        obs_space = gym.spaces.Box(-np.inf, np.inf, obs.shape[1:], np.float32)
        if np.issubdtype(actions.dtype, np.integer) and actions.ndim == 1:
            return obs_space, gym.spaces.Discrete(int(actions.max()) + 1)
        return obs_space, gym.spaces.Box(-np.inf, np.inf, actions.shape[1:], np.float32)

    def _checked_update(self, state: Any, batch: dict, rng: jax.Array) -> tuple:
        state, metrics = self.learner.update(state, batch, rng)
        return state, metrics, nonfinite_code({"metrics": metrics, "params": state.params})

    def training_step(self, iteration: int) -> dict:
        """One update on a sampled batch. Raises `NonFiniteError` on a NaN/inf loss or param,
        keeping the params, optimizer state and RNG from before this iteration."""
        cfg = self.config
        rng, k_idx, k_upd = jax.random.split(self.rng, 3)
        n = len(self.data[Columns.OBS])
        learners = self.learner.data_parallel.size  # rows split evenly over the learners
        idx = np.asarray(jax.random.randint(k_idx, (min(cfg.total_batch_size(), max(learners, n // learners * learners)),),
                                            0, n))
        batch = {Columns.OBS: self.data[Columns.OBS][idx].astype(np.float32), Columns.ACTIONS: self.data[Columns.ACTIONS][idx]}
        learner_state, metrics, code = self._update(self.learner_state, batch, k_upd)
        metrics, code = jax.device_get((metrics, code))
        raise_for_code(code, {"metrics": metrics, "params": learner_state.params}, iteration)
        self.learner_state, self.rng = learner_state, rng
        self.num_samples += len(idx)
        return {"learners": {DEFAULT_MODULE_ID: {k: float(v) for k, v in metrics.items()}},
                "num_env_steps_trained_lifetime": self.num_samples, "num_env_steps_sampled_lifetime": 0,
                "env_runners": {"episode_return_mean": float("nan"), "num_episodes": 0}}  # offline: no episodes

    def evaluate(self, episodes: int) -> list[float]:
        return evaluate_policy(self.config, self.module, self.params(), episodes)

    def params(self) -> Any:
        return self.learner_state.params

    def with_params(self, params: Any) -> None:
        self.learner_state = self.learner_state._replace(params=params)

    def state(self) -> dict:
        return {"learner": self.learner_state, "rng": self.rng}

    def set_state(self, state: dict) -> None:
        self.learner_state, self.rng = state["learner"], state["rng"]

    def env_info(self) -> dict:
        return {"connector": None, "agent_to_module": None}

    def stop(self) -> None:
        """Nothing to close."""

