"""Action distributions on distrax, with RLlib's names, and the default choice per space."""

from __future__ import annotations

import gymnasium as gym
import jax
import numpy as np

from jaxrl_modules.distributions.base import Deterministic, RLlibDistributionMixin
from jaxrl_modules.distributions.categorical import Categorical, MultiCategorical
from jaxrl_modules.distributions.gaussian import DiagGaussian, SquashedGaussian
from jaxrl_modules.distributions.multi import MultiDistribution

__all__ = [
    "Categorical", "DiagGaussian", "SquashedGaussian", "Deterministic", "MultiCategorical",
    "MultiDistribution", "RLlibDistributionMixin", "default_dist_cls",
]


def default_dist_cls(space: gym.Space, box_cls: type = DiagGaussian) -> type:
    """RLlib's catalog choice: Discrete -> Categorical, 1-D float Box -> `box_cls`,
    MultiDiscrete -> MultiCategorical, Tuple/Dict -> MultiDistribution (recursively).

    A Discrete/MultiDiscrete `start` is bound into the class, so samples, modes and `logp`
    use the actions exactly as the space declares them."""
    if isinstance(space, gym.spaces.Discrete):
        start = int(space.start)
        return Categorical.get_partial_dist_cls(start=start) if start else Categorical
    if isinstance(space, gym.spaces.Box):
        if not np.issubdtype(space.dtype, np.floating):
            raise ValueError(f"Box action spaces must have a float dtype; got {space.dtype} in {space}")
        if len(space.shape) != 1:
            raise ValueError(f"Box action spaces must be 1-D; got shape {space.shape} in {space}")
        if space.shape[0] == 0:
            raise ValueError(f"Box action spaces need at least one dimension; got shape {space.shape} in {space}")
        return box_cls
    if isinstance(space, gym.spaces.MultiDiscrete):
        if np.ndim(space.nvec) != 1:
            raise ValueError(f"MultiDiscrete action spaces must have a 1-D nvec; got nvec of shape "
                             f"{tuple(np.shape(space.nvec))} in {space}")
        if np.size(space.nvec) == 0:
            raise ValueError(f"MultiDiscrete action spaces need at least one component; got the empty {space}")
        input_lens = tuple(int(n) for n in space.nvec)
        start = tuple(int(s) for s in space.start)
        if any(start):
            return MultiCategorical.get_partial_dist_cls(input_lens=input_lens, start=start)
        return MultiCategorical.get_partial_dist_cls(input_lens=input_lens)
    if isinstance(space, (gym.spaces.Tuple, gym.spaces.Dict)):
        sub = space.spaces
        if not sub:
            raise ValueError(f"{type(space).__name__} action spaces need at least one sub-space; got the empty {space}")
        if isinstance(space, gym.spaces.Tuple):
            cls_struct = tuple(default_dist_cls(s, box_cls) for s in sub)
            spaces = list(sub)
        else:
            cls_struct = {k: default_dist_cls(s, box_cls) for k, s in sub.items()}
            spaces = [sub[k] for k in sorted(sub)]
        classes = jax.tree_util.tree_leaves(cls_struct, is_leaf=lambda x: isinstance(x, type))
        input_lens = tuple(c.required_input_dim(s) for c, s in zip(classes, spaces))
        return MultiDistribution.get_partial_dist_cls(
            child_distribution_cls_struct=cls_struct, input_lens=input_lens
        )
    raise ValueError(
        f"Unsupported action space {space}; expected Discrete, Box, MultiDiscrete, Tuple or Dict."
    )
