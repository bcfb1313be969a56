"""FlattenObservations: any (nested) observation space to one float32 vector, as RLlib.

Discrete -> one-hot, MultiDiscrete -> concatenated one-hots, Box/MultiBinary -> reshaped
to 1-D, Tuple/Dict -> flattened in tuple / sorted-key order and concatenated. `__call__`
is a pure, jittable function of a batch of observations `[B, ...] -> [B, N]`.
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np


def _leaf_spaces(space: gym.Space) -> list:
    if isinstance(space, gym.spaces.Dict):
        return [leaf for k in sorted(space.spaces) for leaf in _leaf_spaces(space.spaces[k])]
    if isinstance(space, gym.spaces.Tuple):
        return [leaf for s in space.spaces for leaf in _leaf_spaces(s)]
    if isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        return [space]
    raise ValueError(f"FlattenObservations cannot flatten {space}; supported: Box, Discrete, MultiDiscrete, "
                     "MultiBinary, Tuple, Dict")


def _leaf_size(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    return int(np.prod(space.shape)) if space.shape else 1


class FlattenObservations:
    """Env-to-module connector; in a config use `lambda env: FlattenObservations()`."""

    def __init__(self, input_observation_space: Optional[gym.Space] = None,
                 input_action_space: Optional[gym.Space] = None, *, multi_agent: bool = False,
                 agent_ids: Any = None):
        self.input_action_space = input_action_space
        self.multi_agent = multi_agent
        self.agent_ids = agent_ids
        self.input_observation_space: Optional[gym.Space] = None
        self._leaves: list = []
        if input_observation_space is not None:
            self.set_spaces(input_observation_space, input_action_space)

    def set_spaces(self, observation_space: gym.Space, action_space: Optional[gym.Space] = None) -> "FlattenObservations":
        """Binds the input spaces (an algorithm calls this with the env's spaces)."""
        self._leaves = _leaf_spaces(observation_space)
        self.input_observation_space = observation_space
        self.input_action_space = action_space
        return self

    @property
    def observation_space(self) -> gym.spaces.Box:
        """The flattened space: `Box(-inf, inf, (N,), float32)`."""
        if self.input_observation_space is None:
            raise ValueError("FlattenObservations has no input observation space yet; pass one or use it in a config.")
        n = sum(_leaf_size(s) for s in self._leaves)
        return gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)

    def _flatten_leaf(self, space: gym.Space, x: jax.Array, lead: tuple) -> jax.Array:
        if isinstance(space, gym.spaces.Discrete):
            return jax.nn.one_hot(jnp.asarray(x) - space.start, int(space.n), dtype=jnp.float32)
        if isinstance(space, gym.spaces.MultiDiscrete):
            x = jnp.asarray(x).reshape(lead + (-1,))
            nvec, start = np.asarray(space.nvec).reshape(-1), np.asarray(space.start).reshape(-1)
            return jnp.concatenate([jax.nn.one_hot(x[..., i] - int(s), int(n), dtype=jnp.float32)
                                    for i, (n, s) in enumerate(zip(nvec, start))], -1)
        return jnp.asarray(x, jnp.float32).reshape(lead + (-1,))

    def __call__(self, obs: Any) -> jax.Array:
        """`obs`: a batch `[B, ...]` (nested like the space) -> `[B, N]` float32."""
        if self.input_observation_space is None:
            raise ValueError("FlattenObservations has no input observation space yet; pass one or use it in a config.")
        space = self.input_observation_space
        leaves = jax.tree_util.tree_leaves(obs) if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)) else [obs]
        if len(leaves) != len(self._leaves):
            raise ValueError(f"FlattenObservations expects {len(self._leaves)} observation components for {space}; "
                             f"got {len(leaves)}")
        first, first_space = jnp.asarray(leaves[0]), self._leaves[0]
        lead = first.shape[: first.ndim - len(first_space.shape)]
        return jnp.concatenate([self._flatten_leaf(s, x, lead) for s, x in zip(self._leaves, leaves)], axis=-1)
