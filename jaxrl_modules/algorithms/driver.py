"""Driver: one training loop (host, multi-agent host, all-in-jit) behind one small protocol, and
`DrivenAlgorithm`, the Algorithm that composes one.

An algorithm picks its driver once, in `_setup`, from the env kind; afterwards nothing asks which
loop runs: train / evaluate / save / restore / get_params all delegate to the driver. A driver
holds the loop's configuration (module, learner, runner, jitted closures built once in its
constructor) and the state objects the loop changes; `state()` is exactly the checkpoint state.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Optional, Protocol

from jaxrl_modules.algorithms.algorithm import Algorithm
from jaxrl_modules.algorithms.env_runner import EpisodeReturns


class Driver(Protocol):
    """One training loop over one module. `returns` carries `episode_return_mean` across iterations
    (None for a loop without episodes: BC's offline loop), `module_returns` per module when
    multi-agent, else None."""

    module: Any
    learner: Any
    returns: Optional[EpisodeReturns]
    module_returns: Optional[dict]

    def training_step(self, iteration: int) -> dict:
        """One iteration (`iteration` is 1-based, for errors); an RLlib-style result. Raises
        `NonFiniteError` keeping the state from before the iteration (as each loop documents)."""

    def evaluate(self, episodes: int) -> list[float]:
        """The returns of `episodes` complete deterministic episodes on fresh envs."""

    def params(self) -> Any:
        """The current params (the learner's)."""

    def with_params(self, params: Any) -> None:
        """Replaces the params, keeping the rest of the state."""

    def state(self) -> Any:
        """Everything a checkpoint holds (learner state, RNG, counters; all-in-jit: env state too)."""

    def set_state(self, state: Any) -> None:
        """Restores what `state()` gave."""

    def env_info(self) -> dict:
        """`{"connector": the env-to-module connector built or None, "agent_to_module": [[agent,
        module_id], ...] for a multi-agent env, else None}` (algorithm.json's "env")."""

    def stop(self) -> None:
        """Closes envs and env worker processes; idempotent."""


def make_driver(config: Any, make_learner: Optional[Callable] = None, *, steps: Optional[int] = None,
                env_steps_per_train: int = 0, stateless_only: Optional[str] = None) -> Driver:
    """The single-agent training loop for `config`'s env, composed from its runner and a learner
    (`make_learner(module, config, num_envs)`, default the config's learner class): gymnax envs train
    in the generic `JitLoop` (`IterationDriver`: one jitted iteration per `train()`, or
    `ScannedDriver` when `env_steps_per_train` asks for about that many env steps per `train()`),
    gymnasium envs in the generic `HostDriver`. `steps` is the rollout length per env (default
    `rollout_fragment_length`); `stateless_only` names an algorithm that refuses recurrent modules.
    PPO, DQN, SAC and a user's own algorithm (`tests/test_reinforce_toy.py`) build their loops here."""
    from jaxrl_modules.algorithms.learner import default_learner
    from jaxrl_modules.algorithms.jaxmarl_runner import is_jaxmarl
    from jaxrl_modules.envs.registry import is_gymnax

    make_learner = make_learner or default_learner
    if is_gymnax(config.env) or is_jaxmarl(config.env):
        from jaxrl_modules.algorithms.jit_driver import IterationDriver, ScannedDriver
        from jaxrl_modules.algorithms.jit_loop import JitLoop

        pieces = JitLoop(config, make_learner, steps=steps, stateless_only=stateless_only)
        if not env_steps_per_train:
            return IterationDriver(pieces, config.seed)
        return ScannedDriver(pieces, config.seed, max(1, env_steps_per_train // (pieces.steps * pieces.runner.num_envs)))
    from jaxrl_modules.algorithms.host_driver import HostDriver

    return HostDriver(config, make_learner, steps=steps, env_steps_per_train=env_steps_per_train,
                      stateless_only=stateless_only)


_PROTOCOL_METHODS = frozenset({"training_step", "evaluate", "params", "with_params", "state", "set_state", "env_info",
                               "stop"})  # the algorithm's own API wraps these; never read through


class DrivenAlgorithm(Algorithm):
    """An Algorithm whose loop is a `Driver` (`self.driver`), chosen once by `_make_driver`.

    The driver's loop-specific attributes the library and its users read (`runner`, `act`,
    `learner_state`, `train_state`, `jax_ppo`, `envs`, `rng`, ...) are read
    through from the driver; an attribute the chosen loop lacks raises AttributeError as before."""

    def _make_driver(self) -> Driver:
        raise NotImplementedError

    def _setup(self) -> None:
        self.driver = self._make_driver()
        self.module = self.driver.module

    def __getattr__(self, name: str) -> Any:  # only for names not found on the algorithm itself
        driver = self.__dict__.get("driver")
        if driver is None or name.startswith("__") or name in _PROTOCOL_METHODS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            return getattr(driver, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__!r} object (driver {type(driver).__name__}) has no "
                                 f"attribute {name!r}") from None

    def __copy__(self) -> "DrivenAlgorithm":
        """A copy with its own driver copy: it shares the module, learner and jitted closures, and its
        state (set through `_set_state`) is its own (`MultiSeedAlgorithm.algorithm_for_seed`)."""
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        driver = copy.copy(self.driver)
        if getattr(driver, "returns", None) is not None:  # carried returns change in place: the copy's are its own
            driver.returns = copy.copy(driver.returns)
        if getattr(driver, "module_returns", None) is not None:
            driver.module_returns = {mid: copy.copy(r) for mid, r in driver.module_returns.items()}
        new.driver = driver
        return new

    def __setattr__(self, name: str, value: Any) -> None:
        """A name read through from the driver (`algo.learner_state = ...`, `algo.rng = ...`) is written
        to the driver, where the loop reads it; anything else is the algorithm's own attribute."""
        driver = self.__dict__.get("driver")
        if (driver is not None and name not in self.__dict__ and name not in _PROTOCOL_METHODS
                and not hasattr(type(self), name) and hasattr(driver, name)):
            setattr(driver, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def _returns(self) -> EpisodeReturns:
        return self.driver.returns

    @_returns.setter
    def _returns(self, value: EpisodeReturns) -> None:
        self.driver.returns = value

    @property
    def _module_returns(self) -> Optional[dict]:
        return self.driver.module_returns

    @_module_returns.setter
    def _module_returns(self, value: dict) -> None:
        self.driver.module_returns = value

    def training_step(self) -> dict:
        """One iteration of the driver's loop (see the driver's `training_step`)."""
        return self.driver.training_step(self.iteration + 1)

    def evaluate(self, episodes: Optional[int] = None) -> dict:
        """Deterministic (forward_inference) returns of `evaluation_duration` (or `episodes`) complete
        episodes on fresh envs: gymnax envs in one jit (`jax_evaluate`), gymnasium envs in a host loop,
        multi-agent envs with each agent acting through its mapped module (an episode's return is the
        sum over its agents)."""
        episodes = self._evaluation_episodes(episodes)
        return self._evaluation_result(self.driver.evaluate(episodes), episodes)

    def _params(self) -> Any:
        return self.driver.params()

    def _set_params(self, params: Any) -> None:
        self.driver.with_params(params)

    def _state(self) -> Any:
        return self.driver.state()

    def _set_state(self, state: Any) -> None:
        self.driver.set_state(state)

    def _env_info(self) -> dict:
        return self.driver.env_info()

    def stop(self) -> None:
        """Closes the loop's envs (and their worker processes, `num_env_runners > 0`); idempotent."""
        driver = self.__dict__.get("driver")
        if driver is not None:
            driver.stop()
        super().stop()
