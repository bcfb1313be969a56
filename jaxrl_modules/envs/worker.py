"""Env construction inside an env worker process (`num_env_runners > 0`, see
`algorithms/env_runner.py:make_vector_env`). Imports no JAX, so a spawned worker starts quickly."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from jaxrl_modules.envs.registry import make_env


class _UnbuildableEnv(gym.Env):
    """Stands in for an env the worker could not build: its first reset raises the build error, which
    gymnasium's AsyncVectorEnv sends to the main process (a worker that dies instead leaves the main
    process with a bare ConnectionResetError)."""

    def __init__(self, error: BaseException, observation_space: gym.Space, action_space: gym.Space):
        self.error, self.observation_space, self.action_space = error, observation_space, action_space

    def reset(self, *, seed: Any = None, options: Any = None) -> Any:
        raise ValueError(f"the env could not be created in its worker process (num_env_runners > 0): {self.error}; "
                         "an env registered at run time outside an importable module (e.g. gym.register in a "
                         "notebook) is unknown to a spawned worker: use register_env, an env class or creator, "
                         "or num_env_runners=0")

    def step(self, action: Any) -> Any:
        return self.reset()


def make_worker_env(env: Any, env_config: dict, observation_space: gym.Space, action_space: gym.Space) -> Any:
    """`make_env(env, env_config)`, or an env whose reset reports why that failed."""
    try:
        return make_env(env, env_config)
    except Exception as err:  # noqa: BLE001  (reported through the vector env's error queue)
        return _UnbuildableEnv(err, observation_space, action_space)
