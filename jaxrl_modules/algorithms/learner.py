"""The learner protocol: what every training loop (`host_driver.HostDriver`, `jit_loop.JitLoop`)
asks of an algorithm's learner, and the `Rollout` the loops hand it.

A learner is configuration (module, config, optimizer) plus pure functions of an explicit state
(a NamedTuple, as in optax). The loops never look inside the state: they call `init` once, `learn`
once per rollout, and `params` to act. So PPO, DQN, SAC and a user's own algorithm (see
`tests/test_reinforce_toy.py`) run through the same host and all-in-jit loops.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax


class Rollout(NamedTuple):
    """What a runner sampled, as a learner receives it.

    `traj`: time-major columns `[T, N, ...]` (OBS, ACTIONS, ACTION_LOGP, ACTION_DIST_INPUTS, REWARDS,
    TERMINATEDS, TRUNCATEDS; the host runner adds "final_obs"/"bootstrap", a stateful module STATE_IN);
    `last_obs`: the module's observation after the last step `[N, ...]` (connector applied), what
    on-policy learners bootstrap from and replay learners use as the last step's next observation;
    `env_steps`: the loop's lifetime env-step count after this rollout (e.g. for learning starts)."""

    traj: Any
    last_obs: Any
    env_steps: Any


@runtime_checkable
class Learner(Protocol):
    """`init(params) -> state`; `learn(state, rollout, rng) -> (state, metrics)` (pure and jittable:
    the host loop jits it, the all-in-jit loop traces it into its iteration); `params(state)` and
    `with_params(state, params)`; `update(state, batch, rng) -> (state, metrics)` is the algorithm's
    update on an already-built train batch, which `learn` calls after turning the rollout into one
    (PPO: values and GAE; DQN/SAC through `ReplayLearner`: replay buffer then a sampled batch)."""

    module: Any
    config: Any

    def init(self, params: Any) -> Any: ...

    def learn(self, state: Any, rollout: Rollout, rng: jax.Array) -> tuple[Any, dict]: ...

    def update(self, state: Any, batch: Any, rng: jax.Array) -> tuple[Any, dict]: ...

    def params(self, state: Any) -> Any: ...

    def with_params(self, state: Any, params: Any) -> Any: ...


def default_learner(module: Any, config: Any, num_envs: int) -> Learner:
    """The config's learner class built for `module` (PPO's, and a user's own algorithm's): the loops'
    default `make_learner(module, config, num_envs)`."""
    return config.get_default_learner_class()(module, config)
