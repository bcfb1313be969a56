"""PPO's host-loop driver over a gymnasium vector env: a `GymEnvRunner` samples `[T, N]` trajectories
with the jitted exploration forward; one jitted function turns them into a batch and updates.

`MultiAgentHostDriver` (multi_agent_driver.py) is this loop over a multi-agent env: it replaces how
the pieces are built, how many steps are sampled, the batch and the result, nothing else."""

from __future__ import annotations

from typing import Any, Optional

import jax
import numpy as np

from jaxrl_modules.algorithms.env_runner import EpisodeReturns, GymEnvRunner, evaluate_policy, make_act_fn
from jaxrl_modules.algorithms.nonfinite import at_iteration, nonfinite_code, raise_for_code
from jaxrl_modules.algorithms.ppo.learner import LearnerState
from jaxrl_modules.algorithms.ppo.postprocess import sequence_batch, sequence_minibatches, single_agent_batch
from jaxrl_modules.apis import check_required_apis
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns


def floats(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()}


class HostDriver:
    """PPO's single-agent host loop. State: `learner_state`, `rng` and the runner's `num_env_steps`
    (checkpointed as `{"learner", "rng", "env_steps"}`)."""

    def __init__(self, config: Any):
        """`config` is a validated PPOConfig; a failed build closes whatever envs it had opened."""
        self.config = config
        self.runner: Any = None
        self.returns = EpisodeReturns()
        self.module_returns: Optional[dict] = None
        try:
            self._build()
            self.rng = jax.random.key(config.seed)
            self.learner_state = self.learner.init(self.module.init(jax.random.fold_in(self.rng, 1)))
        except BaseException:
            self.stop()  # a failed build leaves no env (or env worker process) behind
            raise
        self._update_fn = jax.jit(self._update)

    def _build(self) -> None:
        """Sets `runner`, `module`, `learner` and `act` (the jitted exploration forward)."""
        cfg = self.config
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
        """Steps per env per iteration: `rollout_fragment_length`, or "auto": the train batch over
        every env (`num_env_runners` x `num_envs_per_env_runner`)."""
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

    # ----------------------------------------------------------------- training
    def _learn(self, state: LearnerState, traj: Any, last_obs: Any, rng: jax.Array) -> tuple:
        """The batch of one rollout and the learner update on it: `(state, metrics)` (traced)."""
        cfg, learner = self.config, self.learner
        connector = self.runner.connector
        last = connector(last_obs) if connector is not None else last_obs
        if Columns.STATE_IN in traj:  # a stateful module: the jit path's sequence batching
            T, N = traj[Columns.REWARDS].shape[:2]
            batch = sequence_batch(learner, learner.params_of(state), traj, last, cfg, self.module.config().max_seq_len)
            return learner.update(state, batch, rng, num_minibatches=sequence_minibatches(cfg, T, N))
        return learner.update(state, single_agent_batch(learner, learner.params_of(state), traj, last, cfg), rng)

    def _update(self, state: LearnerState, traj: Any, last_obs: Any, rng: jax.Array) -> tuple:
        state, metrics = self._learn(state, traj, last_obs, rng)
        return state, metrics, nonfinite_code({"metrics": metrics, "params": self.learner.params_of(state)})

    def training_step(self, iteration: int) -> dict:
        """One iteration. Raises `NonFiniteError` (keeping the state from before the iteration) when
        an env observation or reward, a loss or a param is NaN or inf.

        `result["env_runners"]["episode_return_mean"]` is the mean return of the episodes that ended
        during this iteration, carried forward from the last iteration in which one ended when none did
        (NaN before the first); `num_episodes` counts the episodes that ended (0: carried)."""
        rng, k_sample, k_update = jax.random.split(self.rng, 3)
        with at_iteration(iteration):
            traj, last_obs, finished = self.runner.sample(self.act, self.params(), k_sample, self._steps())
        learner_state, metrics, code = self._update_fn(self.learner_state, traj, last_obs, k_update)
        metrics, code = jax.device_get((metrics, code))
        raise_for_code(code, {"metrics": metrics, "params": self.learner.params_of(learner_state)}, iteration)
        self.learner_state, self.rng = learner_state, rng
        result = {"env_runners": self.returns.update(finished),
                  "num_env_steps_sampled_lifetime": int(self.runner.num_env_steps)}
        return self._result(result, metrics)

    def _steps(self) -> int:
        return self._rollout_length()

    def _result(self, result: dict, metrics: dict) -> dict:
        """`result` completed with the learner metrics (and, multi-agent, the per-module returns)."""
        result["learners"] = {DEFAULT_MODULE_ID: floats(metrics)}
        return result

    def evaluate(self, episodes: int) -> list[float]:
        return evaluate_policy(self.config, self.module, self.params(), episodes)

    # ----------------------------------------------------------------- state
    def params(self) -> Any:
        return self.learner.params_of(self.learner_state)

    def with_params(self, params: Any) -> None:
        self.learner_state = self.learner.with_params(self.learner_state, params)

    def state(self) -> dict:
        return {"learner": self.learner_state, "rng": self.rng,
                "env_steps": np.asarray(self.runner.num_env_steps, np.int64)}

    def set_state(self, state: dict) -> None:
        self.learner_state, self.rng = state["learner"], state["rng"]
        self.runner.num_env_steps = int(state["env_steps"])

    def env_info(self) -> dict:
        return {"connector": getattr(self.runner, "connector", None), "agent_to_module": None}

    def stop(self) -> None:
        """Closes the envs (and their worker processes, `num_env_runners > 0`); idempotent."""
        if self.runner is not None and hasattr(self.runner, "close"):
            self.runner.close()
