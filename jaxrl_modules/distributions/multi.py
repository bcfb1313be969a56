"""MultiDistribution: a (nested) Tuple or Dict of child distributions."""

from __future__ import annotations

from typing import Any, Optional

import distrax
import gymnasium as gym
import jax
import numpy as np

from jaxrl_modules.distributions.base import RLlibDistributionMixin


def _is_dist(x: Any) -> bool:
    return isinstance(x, distrax.Distribution)


class MultiDistribution(RLlibDistributionMixin, distrax.Distribution):
    """Child distributions in a tuple/dict structure; samples have the same structure.

    Children are ordered as `jax.tree_util` flattens them (tuple order, dict keys sorted,
    RLlib's dm-tree order). `logp`, `entropy` and `kl` are sums over the children.
    """

    def __init__(self, child_distribution_struct: Any):
        self._children = child_distribution_struct

    @property
    def children(self) -> Any:
        return self._children

    def _flat(self) -> list:
        return jax.tree_util.tree_leaves(self._children, is_leaf=_is_dist)

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "MultiDistribution":
        kwargs = cls._bound(kwargs)
        cls_struct = kwargs["child_distribution_cls_struct"]
        input_lens = list(kwargs["input_lens"])
        if inputs.shape[-1] != sum(input_lens):
            raise ValueError(
                f"MultiDistribution expects {sum(input_lens)} inputs (input_lens={input_lens}); "
                f"got last dim {inputs.shape[-1]}"
            )
        leaves, treedef = jax.tree_util.tree_flatten(cls_struct, is_leaf=lambda x: isinstance(x, type))
        chunks = np.split(np.arange(sum(input_lens)), np.cumsum(input_lens)[:-1])
        children = [c.from_logits(inputs[..., idx[0]: idx[-1] + 1]) for c, idx in zip(leaves, chunks)]
        return cls(jax.tree_util.tree_unflatten(treedef, children))

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        return int(sum(cls._partial_kwargs["input_lens"]))

    @property
    def event_shape(self) -> tuple:
        return ()

    @property
    def batch_shape(self) -> tuple:
        return self._flat()[0].batch_shape

    def _sample_n(self, key: jax.Array, n: int) -> Any:
        leaves, treedef = jax.tree_util.tree_flatten(self._children, is_leaf=_is_dist)
        keys = jax.random.split(key, len(leaves))
        return jax.tree_util.tree_unflatten(treedef, [d._sample_n(k, n) for d, k in zip(leaves, keys)])

    def sample(self, *, seed: jax.Array, sample_shape: Any = ()) -> Any:
        leaves, treedef = jax.tree_util.tree_flatten(self._children, is_leaf=_is_dist)
        keys = jax.random.split(seed, len(leaves))
        return jax.tree_util.tree_unflatten(
            treedef, [d.sample(seed=k, sample_shape=sample_shape) for d, k in zip(leaves, keys)]
        )

    def log_prob(self, value: Any) -> jax.Array:
        values = jax.tree_util.tree_structure(self._children, is_leaf=_is_dist).flatten_up_to(value)
        return sum(d.log_prob(v) for d, v in zip(self._flat(), values))

    def entropy(self) -> jax.Array:
        return sum(d.entropy() for d in self._flat())

    def kl_divergence(self, other: "MultiDistribution", **kwargs: Any) -> jax.Array:
        return sum(a.kl_divergence(b) for a, b in zip(self._flat(), other._flat()))

    def mode(self) -> Any:
        return jax.tree_util.tree_map(lambda d: d.mode(), self._children, is_leaf=_is_dist)

    def to_deterministic(self) -> "MultiDistribution":
        return MultiDistribution(
            jax.tree_util.tree_map(lambda d: d.to_deterministic(), self._children, is_leaf=_is_dist)
        )
