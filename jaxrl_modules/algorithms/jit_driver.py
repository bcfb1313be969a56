"""The all-in-jit drivers (gymnax and JaxMARL envs): every `train()` is one jitted call on the whole train state.

`pieces` is a `jit_loop.JitLoop` over any learner (`driver.make_driver` builds it: PPO's learner, DQN's
or SAC's in a `ReplayLearner`, a user's own): config, module, learner, runner and the pure
`init(rng) -> state` / `iteration(state) -> (state, metrics)`, the same pieces `build_train_fn` scans.
`IterationDriver` runs one iteration per `train()` (PPO); `ScannedDriver` scans `n` iterations per
`train()` (DQN/SAC: about 1000 env steps). The result functions are shared with `MultiSeedAlgorithm`,
which vmaps the same jitted `step` over seeds.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import numpy as np

from jaxrl_modules.algorithms.env_runner import EpisodeReturns
from jaxrl_modules.algorithms.jit_loop import MODULE_RETURN_PREFIX
from jaxrl_modules.algorithms.nonfinite import NonFiniteError, describe_named, scan_with_first_nonfinite
from jaxrl_modules.columns import DEFAULT_MODULE_ID

NONFINITE_KEYS = ("nonfinite_code", "first_nonfinite_iteration", "first_nonfinite_code")
_SKIP = ("episode_return_mean", "num_episodes", "num_env_steps_sampled_lifetime")
SCANNED_KEPT = "the algorithm keeps its whole state from before this iteration"


def iteration_result(m: dict, returns: EpisodeReturns) -> dict:
    """The result of one jitted iteration's metrics `m` (non-finite keys removed); updates `returns`."""
    n = int(m["num_episodes"])
    return {"env_runners": returns.update_sum(float(m["episode_return_mean"]) * n if n else 0.0, n),
            "num_env_steps_sampled_lifetime": int(m["num_env_steps_sampled_lifetime"]),
            "learners": learner_results(m, float)}


def learner_results(m: dict, reduce: Callable) -> dict:
    """`{module_id: {metric: float}}` of an iteration's metrics: a multi-module learner's are keyed by
    ModuleID already (`{mid: {...}}`), a single module's go under `default_policy`."""
    learner = {k: x for k, x in m.items() if k not in _SKIP and not k.startswith(MODULE_RETURN_PREFIX)}
    if learner and all(isinstance(x, dict) for x in learner.values()):
        return {mid: {k: reduce(x) for k, x in metrics.items()} for mid, metrics in learner.items()}
    return {DEFAULT_MODULE_ID: {k: reduce(x) for k, x in learner.items()}}


def scanned_result(m: dict, returns: EpisodeReturns) -> dict:
    """The result of a scan of jitted iterations' metrics `m` (leading step axis; non-finite keys removed):
    the episodes of all steps, learner metrics averaged over the steps; updates `returns`."""
    ended = m["num_episodes"] > 0
    total = float(np.sum(m["episode_return_mean"][ended] * m["num_episodes"][ended]))
    return {"env_runners": returns.update_sum(total, int(m["num_episodes"].sum())),
            "num_env_steps_sampled_lifetime": int(m["num_env_steps_sampled_lifetime"][-1]),
            "learners": learner_results(m, lambda x: float(np.nanmean(x)))}


def module_return_results(m: dict, module_returns: dict) -> dict:
    """`{module_id: episode_return_mean}` of one or a scan of jitted iterations' metrics (the returns of the
    agents mapped to each module, carried like `episode_return_mean`); updates `module_returns`."""
    episodes = np.atleast_1d(m["num_episodes"])
    ended = episodes > 0
    out = {}
    for mid, returns in module_returns.items():
        means = np.atleast_1d(m[f"{MODULE_RETURN_PREFIX}{mid}"])
        total = float(np.sum(means[ended] * episodes[ended]))
        out[mid] = returns.update_sum(total, int(episodes.sum()))["episode_return_mean"]
    return out


class JitDriver:
    """Holds `pieces`, the jitted `step(state) -> (state, metrics)` (built once) and `train_state`."""

    result: Callable[[dict, EpisodeReturns], dict]

    def __init__(self, pieces: Any, seed: int, step: Callable):
        self.pieces = pieces
        self.module, self.learner, self.runner = pieces.module, pieces.learner, pieces.runner
        self.step = jax.jit(step)
        self.train_state = jax.jit(pieces.init)(jax.random.key(seed))
        self.returns = EpisodeReturns()
        ids = getattr(pieces.runner, "module_ids", None) if getattr(pieces, "runner_is_multi", False) else None
        self.module_returns: Optional[dict] = {mid: EpisodeReturns() for mid in ids} if ids else None
        self._eval_cache: dict = {}  # jitted evaluation rollouts, built once per (episodes, stochastic)

    def training_step(self, iteration: int) -> dict:
        """One jitted call. Raises `NonFiniteError` keeping the whole state from before it."""
        state, metrics = self.step(self.train_state)
        metrics = jax.device_get(metrics)
        self._raise_nonfinite(metrics, state, iteration)
        self.train_state = state
        for key in NONFINITE_KEYS:
            metrics.pop(key, None)
        result = self.result(metrics, self.returns)
        if self.module_returns is not None:
            result["env_runners"]["module_episode_returns_mean"] = module_return_results(metrics, self.module_returns)
        return result

    def _raise_nonfinite(self, metrics: dict, state: Any, iteration: int) -> None:
        raise NotImplementedError

    def evaluate(self, episodes: int) -> list[float]:
        from jaxrl_modules.algorithms.jax_evaluate import evaluate_gymnax

        runner = self.runner
        if hasattr(runner, "evaluate"):  # a runner that evaluates its own env family (JaxMARL)
            return runner.evaluate(self.module.phase_fn("inference"), self.params(), episodes, cache=self._eval_cache)
        return evaluate_gymnax(runner.env, runner.env_params, self.module, self.params(), episodes,
                               obs_fn=runner.obs_fn, to_env=runner.to_env, cache=self._eval_cache)

    def params(self) -> Any:
        return self.learner.params(self.train_state.learner)

    def with_params(self, params: Any) -> None:
        self.train_state = self.train_state._replace(learner=self.learner.with_params(self.train_state.learner, params))

    def state(self) -> Any:
        return self.train_state

    def set_state(self, state: Any) -> None:
        self.train_state = state

    def env_info(self) -> dict:
        mapping = getattr(self.runner, "mapping", None)  # a JaxMARL env's agents and their policies
        pairs = [[agent, mid] for agent, mid in mapping.items()] if mapping is not None else None
        return {"connector": getattr(self.pieces, "connector", None), "agent_to_module": pairs}

    def stop(self) -> None:
        """Nothing to close: the envs live in the train state."""


class IterationDriver(JitDriver):
    """One jitted iteration per `train()` (PPO)."""

    result = staticmethod(iteration_result)

    def __init__(self, pieces: Any, seed: int):
        super().__init__(pieces, seed, pieces.iteration)

    def _raise_nonfinite(self, metrics: dict, state: Any, iteration: int) -> None:
        code = int(metrics["nonfinite_code"])
        if code >= 0:
            name = self.pieces.nonfinite_names[code]
            values = {"metrics": metrics, "params": self.learner.params(state.learner)}
            raise NonFiniteError(name, iteration, describe_named(name, values) or "inside the jitted iteration")


class ScannedDriver(JitDriver):
    """`num_iterations` jitted iterations scanned per `train()` (DQN, SAC)."""

    result = staticmethod(scanned_result)

    def __init__(self, pieces: Any, seed: int, num_iterations: int):
        super().__init__(pieces, seed, lambda s: scan_with_first_nonfinite(pieces.iteration, s, num_iterations))

    def _raise_nonfinite(self, metrics: dict, state: Any, iteration: int) -> None:
        first = int(metrics["first_nonfinite_iteration"][-1])
        if first >= 0:
            name = self.pieces.nonfinite_names[int(metrics["first_nonfinite_code"][-1])]
            inner = jax.tree_util.tree_map(lambda x: x[first], metrics)
            detail = describe_named(name, {"metrics": inner}) or "inside the jitted iteration"
            raise NonFiniteError(name, iteration, f"{detail} (jitted step {first + 1} of {len(metrics['num_episodes'])} "
                                 "in this iteration)", SCANNED_KEPT)
