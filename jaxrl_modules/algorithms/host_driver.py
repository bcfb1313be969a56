"""`HostDriver`: any algorithm's host loop over a gymnasium vector env, composed from a
`GymEnvRunner` and a learner (`learner.Learner`): each rollout is sampled with the jitted exploration
forward, then one jitted call hands it to `learner.learn`. PPO learns from one rollout per `train()`;
DQN and SAC (`ReplayLearner`) from rollouts of one step, about `env_steps_per_train` env steps per
`train()`. `MultiAgentHostDriver` (ppo/multi_agent_driver.py) is this loop over a multi-agent env."""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import numpy as np

from jaxrl_modules import validation as v
from jaxrl_modules.algorithms.data_parallel import make_data_parallel
from jaxrl_modules.algorithms.env_runner import (EpisodeReturns, GymEnvRunner, evaluate_policy, make_act_fn,
                                                 reject_stateful)
from jaxrl_modules.algorithms.learner import Rollout, default_learner
from jaxrl_modules.distributed import any_process, sum_over_processes
from jaxrl_modules.algorithms.nonfinite import (KEPT_STATE, NonFiniteError, at_iteration, describe, nonfinite_code,
                                                quantity_names)
from jaxrl_modules.apis import check_required_apis
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns

# What a loop of several rollouts per train() keeps after a non-finite value (its envs have moved on).
ROLLOUTS_KEPT = ("the algorithm keeps its learner state (params, optimizer state, target params, replay buffer and "
                 "n-step window) and RNG from before this iteration; its envs and env-step counter have moved on")


def floats(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()}


class HostDriver:
    """State: `learner_state`, `rng` and the runner's `num_env_steps` (checkpointed as `{"learner",
    "rng", "env_steps"}`).

    `make_learner(module, config, num_envs)` builds the learner (default: the config's learner class);
    `steps` is each rollout's length per env (default: `rollout_fragment_length`, "auto" the train
    batch over every env); `env_steps_per_train` (0: one rollout) sets how many rollouts a `train()`
    samples and learns from; `stateless_only` names an algorithm that refuses recurrent modules."""

    def __init__(self, config: Any, make_learner: Callable = default_learner, *, steps: Optional[int] = None,
                 env_steps_per_train: int = 0, stateless_only: Optional[str] = None):
        """`config` is a validated algorithm config; a failed build closes whatever envs it had opened."""
        self.config, self.make_learner, self.stateless_only = config, make_learner, stateless_only
        self.steps_setting, self.env_steps_per_train = steps, int(env_steps_per_train)
        self.runner: Any = None
        self.returns = EpisodeReturns()
        self.module_returns: Optional[dict] = None
        try:
            self._build()
            # Data-parallel learners (`num_learners > 1`): the state lives replicated on their devices; every
            # process's envs feed its own devices' rows of the batch (`_place`).
            self.data_parallel = make_data_parallel(config)
            if not hasattr(self.runner, "num_envs") and self.data_parallel.size > 1:
                v.fail("num_learners", "0 or 1 for the multi-agent host loop, which trains on one device in one process "
                       "(JaxMARL envs train data-parallel in one jit)", config.num_learners)
            self.data_parallel.check_rows(getattr(self.runner, "num_envs", 1) * jax.process_count(),
                                          "num_envs_per_env_runner", "a rollout's rows are split over the learners by "
                                          "env: max(1, num_env_runners) x num_envs_per_env_runner x processes",
                                          config.num_envs_per_env_runner)
            rng = jax.random.key(config.seed)
            self.rng = self.data_parallel.put_replicated(rng)
            self.learner_state = self.data_parallel.put_replicated(
                self.learner.init(self.module.init(jax.random.fold_in(rng, 1))))
        except BaseException:
            self.stop()  # a failed build leaves no env (or env worker process) behind
            raise
        self._learn_fn = jax.jit(self._checked_learn)

    def _build(self) -> None:
        """Sets `runner`, `module`, `learner` and `act` (the jitted exploration forward)."""
        cfg = self.config
        self.runner = GymEnvRunner(cfg)
        spec = cfg.module_spec_for(self.runner.observation_space, self.runner.action_space)
        self.module = spec.build()
        if self.stateless_only:
            reject_stateful(self.module, self.stateless_only)
        check_required_apis(self.module, cfg.get_default_learner_class().rl_module_required_apis(), DEFAULT_MODULE_ID)
        self.learner = self.make_learner(self.module, cfg, self.runner.num_envs)
        if self.module.is_stateful():
            self._check_sequence_settings()
            self.runner.set_initial_state(self.module.get_initial_state())
        self.act = make_act_fn(self.module, self.runner.connector)

    def _steps(self) -> int:
        """Steps per env per rollout: `steps`, else `rollout_fragment_length`, or "auto": the train batch
        over every env (`num_env_runners` x `num_envs_per_env_runner`)."""
        cfg = self.config
        if self.steps_setting is not None:
            return int(self.steps_setting)
        if cfg.rollout_fragment_length == "auto":
            return max(1, cfg.total_batch_size() // (self.runner.num_envs * jax.process_count()))  # every process's envs
        return int(cfg.rollout_fragment_length)

    def _rollouts(self, steps: int) -> int:
        """Rollouts per `train()`: about `env_steps_per_train` env steps, at least one."""
        return max(1, self.env_steps_per_train // (steps * self.runner.num_envs)) if self.env_steps_per_train else 1

    def _check_sequence_settings(self) -> None:
        """A stateful module trains on chunks of `max_seq_len` steps (`sequence_batch`, as the jit path):
        the rollout must split into whole chunks."""
        seq_len, steps = self.module.config().max_seq_len, self._steps()
        if steps % seq_len:
            raise ValueError(
                f"rollout_fragment_length: a recurrent module (use_lstm) trains on sequences of max_seq_len={seq_len} "
                f"steps, so each env's rollout must be a multiple of {seq_len}; got {steps} steps per env "
                f"(rollout_fragment_length={self.config.rollout_fragment_length!r}, "
                f"{self.runner.num_envs} envs, train batch {self.config.total_batch_size()}): set "
                f"env_runners(rollout_fragment_length=k * {seq_len}) or a matching max_seq_len")

    # ----------------------------------------------------------------- training
    def _connect(self, obs: Any) -> Any:
        connector = getattr(self.runner, "connector", None)
        return connector(obs) if connector is not None else obs

    def _checked_learn(self, state: Any, traj: Any, last_obs: Any, env_steps: Any, rng: jax.Array) -> tuple:
        """`learner.learn` on one rollout, the non-finite code of its metrics and params, and the next
        RNG (traced: no eager key splitting on the host per rollout)."""
        rng, k_learn = jax.random.split(rng)
        if "final_obs" in traj:  # the raw observation each step led to: the module's view of it, [T, N, ...]
            T, N = traj[Columns.REWARDS].shape[:2]
            final = jax.tree_util.tree_map(lambda x: x.reshape((T * N,) + x.shape[2:]), traj["final_obs"])
            traj = {**traj, "final_obs": jax.tree_util.tree_map(lambda x: x.reshape((T, N) + x.shape[1:]),
                                                                self._connect(final))}
        state, metrics = self.learner.learn(state, Rollout(traj, self._connect(last_obs), env_steps), k_learn)
        return state, metrics, nonfinite_code({"metrics": metrics, "params": self.learner.params(state)}), rng

    def training_step(self, iteration: int) -> dict:
        """One iteration: `_rollouts` rollouts, each learned from. Raises `NonFiniteError` when an env
        observation or reward, an action, a loss or a param is NaN or inf, keeping the learner state and
        RNG from before the iteration; a NaN/inf observation is never acted on, and no env is stepped
        with actions of non-finite params.

        `result["env_runners"]["episode_return_mean"]` is the mean return of the episodes that ended
        during this iteration, carried forward from the last iteration in which one ended when none did
        (NaN before the first); `num_episodes` counts the episodes that ended (0: carried)."""
        steps = self._steps()
        rollouts = self._rollouts(steps)
        kept = ROLLOUTS_KEPT if rollouts > 1 else KEPT_STATE
        start, finished, metrics = (self.learner_state, self.rng), [], {}
        pending = None  # the last learn step's (code, state, metrics, step): checked before its params act
        for r in range(rollouts):
            if pending is not None:
                self._check(pending, start, iteration, kept)
            try:  # acting folds each step's lifetime env-step count into `rng`: a fresh key per step
                with at_iteration(iteration, kept):
                    traj, last_obs, ended = self._sample(steps, r * steps)
            except NonFiniteError:
                self.learner_state, self.rng = start
                raise
            finished += ended
            traj, last_obs = self._place(traj, last_obs)
            state, metrics, code, rng = self._learn_fn(self.learner_state, traj, last_obs, self.env_steps, self.rng)
            pending = (code, state, metrics, r * steps if rollouts > 1 else None)
            self.learner_state, self.rng = state, rng
        self._check(pending, start, iteration, kept)
        total, count = sum_over_processes([sum(float(x) for x in finished), len(finished)])
        result = {"env_runners": self.returns.update_sum(total, int(count)), "num_env_steps_sampled_lifetime": self.env_steps}
        return self._result(result, jax.device_get(metrics))

    def _sample(self, steps: int, first_step: int) -> tuple:
        """The runner's rollout. In a multi-process run every process learns from every rollout, so a
        non-finite env value one process met stops every process (each raises NonFiniteError)."""
        if jax.process_count() == 1:
            return self.runner.sample(self.act, self._acting_params(), self._acting_rng(), steps, first_step=first_step)
        error, out = None, None
        try:
            out = self.runner.sample(self.act, self._acting_params(), self._acting_rng(), steps, first_step=first_step)
        except NonFiniteError as err:
            error = err
        if any_process(error is not None):
            raise error or NonFiniteError("env value on another process", None,
                                          "another process of this multi-process run met it (see its error)")
        return out

    # ----------------------------------------------------------------- data-parallel placement
    def _place(self, traj: Any, last_obs: Any) -> tuple:
        """A rollout `[T, N, ...]` as the learners' input: with several learners, every process's rows
        joined into one global batch split over the devices along the env axis."""
        if self.data_parallel.size == 1:
            return traj, last_obs
        return self.data_parallel.put_local_rows(traj, axis=1), self.data_parallel.put_local_rows(last_obs, axis=0)

    @staticmethod
    def _local(tree: Any) -> Any:
        """A replicated global value as this process's copy on its first device (what acting jits run with)."""
        return jax.tree_util.tree_map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array)
                                      and len(x.sharding.device_set) > 1 else x, tree)

    def _acting_params(self) -> Any:
        return self._local(self.params())

    def _acting_rng(self) -> jax.Array:
        """The acting key: each process of a multi-process run samples its own envs' actions with its own."""
        rng = self._local(self.rng)
        return rng if jax.process_count() == 1 else jax.random.fold_in(rng, jax.process_index())

    def _check(self, pending: tuple, start: tuple, iteration: int, kept: str) -> None:
        """Waits for a learn step; on a NaN/inf in its metrics or params, restores `start` (learner state,
        RNG) and raises."""
        code, state, metrics, step = pending
        code = int(code)
        if code >= 0:
            self.learner_state, self.rng = start
            self._raise_nonfinite(code, state, metrics, iteration, step, kept)

    def _raise_nonfinite(self, code: int, state: Any, metrics: dict, iteration: int, step: Optional[int],
                         kept: str) -> None:
        """Raises `NonFiniteError` for the check tree's leaf `code` of a learn step (at sampling step
        `step` of the iteration, when it samples several rollouts)."""
        tree = {"metrics": metrics, "params": self.learner.params(state)}
        name = quantity_names(tree)[code]
        detail = describe(jax.device_get(jax.tree_util.tree_leaves(tree)[code]))
        if step is not None:
            detail = f"first at sampling step {step} of this iteration ({detail})"
        raise NonFiniteError(name, iteration, detail, kept)

    def _result(self, result: dict, metrics: dict) -> dict:
        """`result` completed with the learner metrics (and, multi-agent, the per-module returns)."""
        result["learners"] = {DEFAULT_MODULE_ID: floats(metrics)}
        return result

    def evaluate(self, episodes: int) -> list[float]:
        return evaluate_policy(self.config, self.module, self._acting_params(), episodes)

    # ----------------------------------------------------------------- state
    def params(self) -> Any:
        return self.learner.params(self.learner_state)

    def with_params(self, params: Any) -> None:
        self.learner_state = self.data_parallel.put_replicated(self.learner.with_params(self.learner_state, params))

    def state(self) -> dict:
        return {"learner": self.learner_state, "rng": self.rng, "env_steps": np.asarray(self.env_steps, np.int64)}

    def set_state(self, state: dict) -> None:
        """Restores `state()`; the env steps of a run of P processes are split evenly over this run's."""
        self.learner_state, self.rng = self.data_parallel.put_replicated((state["learner"], state["rng"]))
        self.runner.num_env_steps = int(state["env_steps"]) // jax.process_count()

    @property
    def env_steps(self) -> int:
        """Env steps sampled over the algorithm's life by every process (the runner's count x processes:
        each steps as many); what the learner counts and the checkpoint holds."""
        return int(self.runner.num_env_steps) * jax.process_count()

    @property
    def envs(self) -> Any:
        """The runner's vector env (its worker processes: `envs.processes`, `num_env_runners > 0`)."""
        return self.runner.envs

    def env_info(self) -> dict:
        return {"connector": getattr(self.runner, "connector", None), "agent_to_module": None}

    def stop(self) -> None:
        """Closes the envs (and their worker processes, `num_env_runners > 0`); idempotent."""
        if self.runner is not None and hasattr(self.runner, "close"):
            self.runner.close()
