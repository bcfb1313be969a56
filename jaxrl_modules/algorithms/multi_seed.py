"""N seeds of one all-in-jit algorithm (PPO, DQN, SAC, or any whose driver `make_driver` builds, on a
`gymnax:` or `jaxmarl:` env) trained in one jit.

`MultiSeedAlgorithm(config, num_seeds)` builds ONE algorithm with `config.build()` (module, learner,
jitted iteration), holds the N train states of seeds `config.seed + i` stacked on a leading axis
(initialised by the algorithm's own init, vmapped over the N keys) and runs each `train()` as one
`jax.jit(jax.vmap(iteration))` over them. Seed *indices* `i` (0..N-1) address seeds throughout
(`get_params(i)`, `algorithm_for_seed(i)`, `result["seeds"][i]`); `seeds[i]` is the seed itself.

Each seed trains as `config.debugging(seed=seeds[i]).build()` would: the same initial state exactly,
then the same results up to float rounding (vmap batches the matmuls and loss reductions, whose CPU
kernels may sum in another order: params differ by ~1e-10 after a few iterations).

Checkpoints: a folder with `multi_seed.json` and one normal algorithm checkpoint per seed in
`seed_<i>/` (each loadable on its own by `config.debugging(seed=seeds[i]).build()`).
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules import validation as v
from jaxrl_modules.algorithms.algorithm import Algorithm, read_json_object
from jaxrl_modules.algorithms.env_runner import EpisodeReturns
from jaxrl_modules.algorithms.jit_driver import module_return_results, NONFINITE_KEYS, IterationDriver, JitDriver
from jaxrl_modules.algorithms.nonfinite import NonFiniteError, describe_named
from jaxrl_modules.algorithms.jaxmarl_runner import is_jaxmarl
from jaxrl_modules.envs.registry import is_gymnax

MULTI_SEED_JSON = "multi_seed.json"
KIND = "multi_seed"
FORMAT = "jaxrl_modules.multi_seed/1"
KEPT = "every seed keeps its whole state from before this iteration"


def seed_dir_name(index: int) -> str:
    """The subfolder of seed index `index` in a multi-seed checkpoint."""
    return f"seed_{index}"


def _nanmean(values: Any) -> float:
    """Mean ignoring NaNs; NaN (without a warning) when all are NaN or there are none."""
    arr = np.asarray(list(values), dtype=np.float64)
    finite = arr[~np.isnan(arr)]
    return float(finite.mean()) if finite.size else float("nan")


def _identify(path: Path) -> Optional[tuple]:
    """`atomic_dir`'s identify: a multi-seed checkpoint (kind "multi_seed"), else `checkpoint.identify`."""
    from jaxrl_modules.checkpoint import identify

    try:
        meta = json.loads((path / MULTI_SEED_JSON).read_text()) if (path / MULTI_SEED_JSON).is_file() else None
    except (OSError, ValueError):
        return None
    if isinstance(meta, dict) and meta.get("format") == FORMAT and v.is_int(meta.get("num_seeds")) \
            and 0 < meta["num_seeds"] <= 100_000:
        return KIND, frozenset({MULTI_SEED_JSON, *(seed_dir_name(i) for i in range(meta["num_seeds"]))})
    return identify(path)


def _save_id(path: Path) -> Optional[str]:
    try:
        meta = json.loads((path / MULTI_SEED_JSON).read_text())
    except (OSError, ValueError):
        return None
    return meta.get("save_id") if isinstance(meta, dict) else None


def _seed_slice(metrics: dict, i: int) -> dict:
    """Seed `i`'s metrics (every leaf, per-module dicts included, indexed on its leading seed axis)."""
    return jax.tree_util.tree_map(lambda x: x[i], metrics)


class MultiSeedAlgorithm:
    """`num_seeds` copies of one gymnax or JaxMARL algorithm (seeds `config.seed + i`), trained in one jitted,
    vmapped step."""

    def __init__(self, config: Any, num_seeds: int):
        from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig
        from jaxrl_modules.algorithms.bc.bc import BC
        from jaxrl_modules.algorithms.driver import DrivenAlgorithm

        if not v.is_int(num_seeds):
            v.fail("num_seeds (--num-seeds)", "an int >= 1", num_seeds, TypeError)
        if num_seeds < 1:
            v.fail("num_seeds (--num-seeds)", "an int >= 1", num_seeds)
        if jax.process_count() > 1:
            v.fail("num_seeds (--num-seeds)", "used in a run of one process (vmapped seeds are not built for "
                   f"jax.distributed; this run has {jax.process_count()} processes): train the seeds one run each",
                   num_seeds)
        if not isinstance(config, AlgorithmConfig):
            v.fail("MultiSeedAlgorithm's config", "an AlgorithmConfig such as PPOConfig()", config, TypeError)
        if not (is_gymnax(config.env) or is_jaxmarl(config.env)):
            raise ValueError(f"num_seeds (--num-seeds) needs a gymnax env ('gymnax:<id>') or a JaxMARL env ('jaxmarl:<name>'), "
                             f"whose seeds train together in one jit; got env {config.env!r}")
        cls = config.get_algorithm_class()
        if not issubclass(cls, DrivenAlgorithm) or issubclass(cls, BC):
            raise ValueError(f"num_seeds (--num-seeds) needs an algorithm with an all-in-jit mode (PPO, DQN, SAC or one "
                             f"whose driver make_driver builds); "
                             f"{cls.__name__} has none")
        seed = v.seed_int("seed", config.seed)
        if seed + num_seeds - 1 > v.SEED_MAX:
            raise ValueError(f"seed + num_seeds - 1 (the last of the seeds seed, seed + 1, ...) must be <= {v.SEED_MAX}, "
                             f"the largest seed; got seed={seed} and num_seeds (--num-seeds) {num_seeds}")
        self.num_seeds = int(num_seeds)
        self._algo = config.build()  # the module, learner and jitted iteration shared by all seeds
        if not isinstance(self._algo.driver, JitDriver):
            raise ValueError(f"num_seeds (--num-seeds) needs the all-in-jit mode; {cls.__name__} on {config.env!r} did not "
                             "build it")
        self.config = self._algo.config
        self.seeds = [int(self.config.seed) + i for i in range(self.num_seeds)]
        self._configs = [self.config.copy().debugging(seed=s) for s in self.seeds]
        self.module = self._algo.module
        self.iteration = 0
        self._ppo = isinstance(self._algo.driver, IterationDriver)  # one iteration per train() (else scanned)
        driver = self._algo.driver
        init, step, self._names = driver.pieces.init, driver.step, driver.pieces.nonfinite_names
        self._seed_result = driver.result  # one seed's result, as the single algorithm's train() gives it
        keys = jnp.stack([jax.random.key(s) for s in self.seeds])
        self.state = jax.jit(jax.vmap(init))(keys)
        self._step = jax.jit(jax.vmap(step))  # built once: every train() reuses its one compilation
        self._returns = [EpisodeReturns() for _ in self.seeds]  # each seed's carried episode_return_mean
        ids = driver.module_returns  # per module (JaxMARL runs), carried per seed; not in multi_seed.json
        self._module_returns = None if ids is None else [{mid: EpisodeReturns() for mid in ids} for _ in self.seeds]

    # ----------------------------------------------------------------- training
    def train(self) -> dict:
        """One iteration of every seed. `num_env_steps_sampled_lifetime` is summed over seeds,
        `env_runners/episode_return_mean` the mean over seeds that have one (NaN-free), `num_episodes`
        summed, learner metrics the means over seeds; `result["seeds"][i]` is seed i's result as a
        single algorithm's `train()` gives it. Raises `NonFiniteError` naming the first seed that met a
        NaN/inf, keeping every seed's state from before this iteration."""
        start = time.perf_counter()
        iteration = self.iteration + 1
        state, metrics = self._step(self.state)
        metrics = jax.device_get(metrics)
        self._raise_nonfinite(metrics, state, iteration)
        for key in NONFINITE_KEYS:
            metrics.pop(key, None)
        returns = [copy.copy(r) for r in self._returns]
        per_seed = [self._seed_result(_seed_slice(metrics, i), returns[i]) for i in range(self.num_seeds)]
        module_returns = None
        if self._module_returns is not None:  # a JaxMARL run: each seed's per-module returns, as its train() gives them
            module_returns = [{mid: copy.copy(r) for mid, r in seed.items()} for seed in self._module_returns]
            for i, result in enumerate(per_seed):
                result["env_runners"]["module_episode_returns_mean"] = module_return_results(
                    _seed_slice(metrics, i), module_returns[i])
        self.state, self._returns, self.iteration = state, returns, iteration
        self._module_returns = module_returns
        elapsed = time.perf_counter() - start
        for result in per_seed:
            result["training_iteration"], result["time_this_iter_s"] = iteration, elapsed
        learners = per_seed[0]["learners"]  # {module_id: {metric: value}}: one module, or a JaxMARL run's policies
        return {"env_runners": {"episode_return_mean": _nanmean(r["env_runners"]["episode_return_mean"] for r in per_seed),
                                "num_episodes": sum(r["env_runners"]["num_episodes"] for r in per_seed)},
                "num_env_steps_sampled_lifetime": sum(r["num_env_steps_sampled_lifetime"] for r in per_seed),
                "learners": {mid: {k: _nanmean(r["learners"][mid][k] for r in per_seed) for k in keys}
                             for mid, keys in learners.items()},
                "training_iteration": iteration, "time_this_iter_s": elapsed, "seeds": per_seed}

    def _raise_nonfinite(self, metrics: dict, state: Any, iteration: int) -> None:
        """The single algorithm's `NonFiniteError` for the first seed (by index) that met a NaN/inf, if any."""
        if self._ppo:
            codes = np.asarray(metrics["nonfinite_code"])
        else:
            codes = np.asarray(metrics["first_nonfinite_code"])[:, -1]
        bad = np.flatnonzero(codes >= 0)
        if not bad.size:
            return
        i = int(bad[0])
        name = self._names[int(codes[i])]
        where = f"seed {self.seeds[i]} (seed index {i} of {self.num_seeds}"
        where += f"; seed indices {bad.tolist()} met non-finite values)" if bad.size > 1 else ")"
        m = _seed_slice(metrics, i)
        if self._ppo:
            params = jax.tree_util.tree_map(lambda x: x[i], self._algo.driver.learner.params(state.learner))
            detail = describe_named(name, {"metrics": m, "params": params}) or "inside the jitted iteration"
        else:
            first = int(m["first_nonfinite_iteration"][-1])
            inner = {k: x[first] for k, x in m.items()}
            detail = describe_named(name, {"metrics": inner}) or "inside the jitted iteration"
            detail += f" (jitted step {first + 1} of {len(m['num_episodes'])} in this iteration)"
        raise NonFiniteError(name, iteration, f"{where}: {detail}", KEPT)

    # ----------------------------------------------------------------- per seed
    def _index(self, index: Any, name: str) -> int:
        if not v.is_int(index):
            v.fail(name, f"a seed index, an int in [0, {self.num_seeds - 1}] (seeds {self.seeds})", index, TypeError)
        if not 0 <= index < self.num_seeds:
            v.fail(name, f"a seed index, an int in [0, {self.num_seeds - 1}] (seeds {self.seeds})", index)
        return int(index)

    def _seed_state(self, index: int) -> Any:
        return jax.tree_util.tree_map(lambda x: x[index], self.state)

    def algorithm_for_seed(self, index: int) -> Algorithm:
        """A single-seed Algorithm (config seed `seeds[index]`) holding seed `index`'s current state and
        iteration: save, evaluate or train it like any algorithm; it is independent of this object."""
        index = self._index(index, "algorithm_for_seed's index")
        single = copy.copy(self._algo)  # its own driver copy: shares the module, learner and jitted functions, not the state
        single.config = self._configs[index].copy()
        single._set_state(self._seed_state(index))
        single.iteration = self.iteration
        single._returns = copy.copy(self._returns[index])
        if self._module_returns is not None:
            single._module_returns = {mid: copy.copy(r) for mid, r in self._module_returns[index].items()}
        return single

    def get_module(self, module_id: Optional[str] = None) -> Any:
        """The shared module (as `Algorithm.get_module`)."""
        return self._algo.get_module(module_id)

    def get_params(self, seed: Optional[int] = None) -> Any:
        """A snapshot of seed index `seed`'s params, or (None) of all seeds' params stacked on a leading axis."""
        params = self._algo.driver.learner.params(self.state.learner)  # every seed's, stacked
        if seed is not None:
            index = self._index(seed, "get_params's seed")
            params = jax.tree_util.tree_map(lambda x: x[index], params)
        return jax.tree_util.tree_map(lambda x: np.array(x), params)

    def evaluate(self, episodes: Optional[int] = None) -> dict:
        """Each seed through the single algorithm's `evaluate`; `env_runners/episode_return_mean` is the
        mean over seeds, `episode_returns` all seeds' returns (seed by seed), `seeds[i]` seed i's result."""
        per_seed = [self.algorithm_for_seed(i).evaluate(episodes) for i in range(self.num_seeds)]
        returns = [float(r) for res in per_seed for r in res["env_runners"]["episode_returns"]]
        return {"env_runners": {"episode_return_mean": _nanmean(r["env_runners"]["episode_return_mean"] for r in per_seed),
                                "num_episodes": len(returns), "episode_returns": returns},
                "seeds": per_seed}

    # ----------------------------------------------------------------- checkpoints
    def _writer(self) -> Any:
        """A function of a folder writing this multi-seed checkpoint into it (state captured now)."""
        from jaxrl_modules.atomic_dir import new_save_id
        from jaxrl_modules.checkpoint import _write_json

        singles = [self.algorithm_for_seed(i) for i in range(self.num_seeds)]
        meta = {"format": FORMAT, "algorithm": type(self._algo).__name__, "num_seeds": self.num_seeds,
                "seeds": list(self.seeds), "iteration": self.iteration,
                "last_returns": [None if math.isnan(r.last) else r.last for r in self._returns]}

        def write(directory: Path) -> None:
            for i, single in enumerate(singles):
                target = directory / seed_dir_name(i)
                target.mkdir()
                single.write_checkpoint(target)
            _write_json(directory / MULTI_SEED_JSON, {**meta, "save_id": new_save_id()})

        return write

    def write_checkpoint(self, directory: Any) -> None:
        """Writes `multi_seed.json` and `seed_<i>/` (a normal algorithm checkpoint per seed) into
        `directory`, an existing empty folder the caller manages; no atomic swap."""
        directory = Path(directory)
        if not directory.is_dir() or any(directory.iterdir()):
            raise ValueError(f"write_checkpoint needs an existing empty directory; got {str(directory)!r}")
        self._writer()(directory)

    def save_to_path(self, path: Any) -> str:
        """The checkpoint of `write_checkpoint`, written safely and atomically at `path` (`jaxrl_modules.atomic_dir`)."""
        from jaxrl_modules.atomic_dir import atomic_dir

        return atomic_dir(path, self._writer(), KIND, _identify)

    def restore_from_path(self, path: Any) -> None:
        """Restores every seed's state, the iteration and the carried returns from a multi-seed checkpoint."""
        from jaxrl_modules.atomic_dir import path_text, read_consistently

        path = Path(path_text(path)).absolute()
        states, iteration, last_returns = read_consistently(path, lambda: self._read(path), _save_id)
        self.state = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
        self.iteration = iteration
        for r, last in zip(self._returns, last_returns):
            r.last = last

    def _read(self, path: Path) -> tuple[list, int, list]:
        meta = self._read_meta(path)
        states = []
        for i in range(self.num_seeds):
            single = self.algorithm_for_seed(i)
            single.restore_from_path(path / seed_dir_name(i))
            if single.iteration != meta["iteration"]:
                raise ValueError(f"Multi-seed checkpoint {str(path)!r}: {seed_dir_name(i)}/ is at iteration {single.iteration}; "
                                 f"{MULTI_SEED_JSON} says {meta['iteration']}")
            states.append(single._state())
        returns = [float("nan") if r is None else float(r) for r in meta["last_returns"]]
        return states, meta["iteration"], returns

    def _read_meta(self, path: Path) -> dict:
        """multi_seed.json, checked against this algorithm, and the seed folders' presence."""
        if not path.is_dir():
            raise ValueError(f"No multi-seed checkpoint at {str(path)!r}: expected a directory, found "
                             f"{'nothing' if not path.exists() else 'a file'}")
        file = path / MULTI_SEED_JSON
        found = sorted(p.name for p in path.iterdir())
        if not file.is_file():
            raise ValueError(f"{str(path)!r} is not a multi-seed checkpoint: expected {MULTI_SEED_JSON} and "
                             f"{', '.join(seed_dir_name(i) + '/' for i in range(self.num_seeds))}; found {found[:8]}")
        where = f"Multi-seed checkpoint file {str(file)!r}"
        meta = read_json_object(file, where)
        checks = {"num_seeds": (lambda x: v.is_int(x) and x >= 1, "an int >= 1"),
                  "seeds": (lambda x: isinstance(x, list) and all(v.is_int(s) for s in x), "a list of ints"),
                  "iteration": (lambda x: v.is_int(x) and x >= 0, "an int >= 0"),
                  "last_returns": (lambda x: isinstance(x, list) and all(r is None or v.is_real(r) for r in x),
                                   "a list of numbers or nulls")}
        for key, (ok, expected) in checks.items():
            if key not in meta:
                raise ValueError(f"{where} lacks the key {key!r} (expected {sorted(checks)}); it has {sorted(meta)}")
            if not ok(meta[key]):
                v.fail(f"{where} key {key!r}", expected, meta[key])
        if meta["num_seeds"] != self.num_seeds:
            raise ValueError(f"Multi-seed checkpoint {str(path)!r} holds {meta['num_seeds']} seeds (num_seeds); this "
                             f"algorithm has num_seeds={self.num_seeds}")
        if meta["seeds"] != self.seeds:
            raise ValueError(f"Multi-seed checkpoint {str(path)!r} was saved with seeds {meta['seeds']}; this algorithm "
                             f"has seeds {self.seeds} (config seed {self.config.seed}, num_seeds {self.num_seeds})")
        if len(meta["last_returns"]) != self.num_seeds:
            v.fail(f"{where} key 'last_returns'", f"a list of {self.num_seeds} (num_seeds) numbers or nulls",
                   meta["last_returns"])
        missing = [seed_dir_name(i) for i in range(self.num_seeds) if not (path / seed_dir_name(i)).is_dir()]
        if missing:
            raise ValueError(f"Multi-seed checkpoint {str(path)!r} lacks the seed folders {missing}: expected "
                             f"{[seed_dir_name(i) for i in range(self.num_seeds)]}; found {found[:8]}")
        return meta

    def stop(self) -> None:
        """Closes envs (none on the all-in-jit path)."""
        self._algo.stop()
