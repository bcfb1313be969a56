"""The runner protocols: what the loops ask of the object that steps an env family.

A host runner (`GymEnvRunner`: gymnasium, in this process or in worker processes;
`MultiAgentEnvRunner`: multi-agent envs) owns its envs and samples on the host, calling the jitted
`act` once per env step; `HostDriver` runs any learner over it. A JAX runner (`JaxEnvRunner`: gymnax)
is pure: all it changes is in the state it returns, so `JitLoop` traces it into one jitted iteration.
A new env family needs one runner of the matching kind and nothing else (see ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import jax


@runtime_checkable
class HostRunner(Protocol):
    """`sample(act, params, rng, steps, first_step=0) -> (traj, last_obs, finished_returns)`: `steps`
    env steps of every env with `act(params, obs, rng, t)` (`t` a step count folded into the key:
    `GymEnvRunner` passes the lifetime env-step count, which DQN's epsilon schedule reads), traj
    columns `[T, N, ...]`, the raw observation after the last step, and the returns of the episodes
    that ended; `num_env_steps` counts every env step sampled (checkpointed)."""

    num_env_steps: int

    def sample(self, act: Callable, params: Any, rng: jax.Array, steps: int, first_step: int = 0) -> tuple: ...

    def close(self) -> None: ...


@runtime_checkable
class JaxRunner(Protocol):
    """`reset(rng, initial_state) -> state` and `rollout(act, params, state, rng, steps, t0=None) -> (state,
    traj, stats)` (`t0`: the lifetime env-step count, passed on per step as `act(..., t=...)`), both pure
    and jittable (`stats`: "return_sum" and "episodes" of the episodes that ended);
    `obs_fn` maps an env observation to the module's (the connector, or identity)."""

    num_envs: int
    obs_fn: Callable

    def reset(self, rng: jax.Array, initial_state: Any = None) -> Any: ...

    def rollout(self, act_fn: Callable, params: Any, state: Any, rng: jax.Array, steps: int, t0: Any = None) -> tuple:
        ...
