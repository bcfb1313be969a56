"""MultiDistribution: a (nested) Tuple or Dict of child distributions."""

from __future__ import annotations

from typing import Any, Optional

import distrax
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules.distributions.base import Deterministic, RLlibDistributionMixin, as_array, check_dist_inputs, describe
from jaxrl_modules.distributions.categorical import Categorical, MultiCategorical


def _is_dist(x: Any) -> bool:
    return isinstance(x, distrax.Distribution)


def _action_shape(d: Any) -> tuple:
    """The shape of one action of child `d` (per batch element): its event shape, or for our
    Deterministic (whose distrax event_shape is () however many event axes it sums) its last
    `event_ndims` axes."""
    if isinstance(d, Deterministic):
        return tuple(d.loc.shape[d.loc.ndim - d._event_ndims:]) if d._event_ndims else ()
    return tuple(d.event_shape)


class MultiDistribution(RLlibDistributionMixin, distrax.Joint):
    """Child distributions in a tuple/dict structure; samples have the same structure.

    A `distrax.Joint`: sampling (`sample`, `sample_and_log_prob`: one key per child, split from
    the seed), `log_prob`, `entropy`, `mode`, `batch_shape`/`event_shape` and `kl` (distrax's
    Joint-Joint KL: sums over children) are distrax's. On top: RLlib's `from_logits` with child
    classes and input lens, and `logp` taking RLlib's action forms. Children are ordered as
    `jax.tree_util` flattens them (tuple order, dict keys sorted, RLlib's dm-tree order).
    `logp` takes actions in the children's structure, a flat list of the children's actions, or
    (as RLlib's) one `[B, n]` array, split by the children's action sizes (a Categorical takes one
    column).
    """

    _accepted_kwargs = ("child_distribution_cls_struct", "input_lens")

    def __init__(self, child_distribution_struct: Any):
        # distrax.Joint.__init__ sets exactly these fields, then also requires every child to report
        # the same distrax batch_shape. Our Deterministic (RLlib's event_ndims) reports its event axes
        # as batch axes ([B, d] for a Box child, [B] for a Discrete one), so `to_deterministic()` of a
        # mixed Tuple/Dict would be refused; RLlib checks nothing there either. We set them here.
        distrax.Distribution.__init__(self)
        self._distributions = child_distribution_struct
        self._distributions_treedef = jax.tree_util.tree_structure(child_distribution_struct, is_leaf=_is_dist)
        self._distributions_leaves = self._distributions_treedef.flatten_up_to(child_distribution_struct)

    @property
    def children(self) -> Any:
        """The child distributions, in the structure they were given (distrax's `distributions`)."""
        return self._distributions

    def _flat(self) -> list:
        return self._distributions_leaves

    @classmethod
    def from_logits(cls, inputs: jax.Array, **kwargs: Any) -> "MultiDistribution":
        kwargs = cls._bound(kwargs)
        if "child_distribution_cls_struct" not in kwargs or "input_lens" not in kwargs:
            raise ValueError("MultiDistribution.from_logits needs child_distribution_cls_struct and input_lens; "
                             "use default_dist_cls(space) or MultiDistribution.get_partial_dist_cls(...)")
        cls_struct = kwargs["child_distribution_cls_struct"]
        input_lens = [int(n) for n in kwargs["input_lens"]]
        inputs = check_dist_inputs(cls.__name__, inputs, sum(input_lens), f" (input_lens={input_lens})")
        leaves, treedef = jax.tree_util.tree_flatten(cls_struct, is_leaf=lambda x: isinstance(x, type))
        chunks = np.split(np.arange(sum(input_lens)), np.cumsum(input_lens)[:-1])
        children = [c.from_logits(inputs[..., idx[0]: idx[-1] + 1]) for c, idx in zip(leaves, chunks)]
        return cls(jax.tree_util.tree_unflatten(treedef, children))

    @classmethod
    def required_input_dim(cls, space: gym.Space, model_config: Optional[Any] = None) -> int:
        return int(sum(cls._partial_kwargs["input_lens"]))

    def _structure(self) -> Any:
        return jax.tree_util.tree_map(lambda d: type(d).__name__, self._distributions, is_leaf=_is_dist)

    def _support(self) -> tuple:
        return (self._distributions_treedef,
                tuple((type(d).__name__, getattr(d, "_support", lambda: ())()) for d in self._distributions_leaves))

    def _describe(self) -> str:
        return f"{type(self).__name__} of {self._structure()}"

    def _child_sizes(self) -> list:
        return [d.flat_action_size() if isinstance(d, MultiDistribution) else int(np.prod(_action_shape(d), dtype=int))
                for d in self._flat()]

    def flat_action_size(self) -> int:
        """Columns of RLlib's flat `[B, n]` action form: one per Categorical, `k` per
        MultiCategorical, `d` per d-dim Box child (nested MultiDistributions add up)."""
        return sum(self._child_sizes())

    def _split_flat(self, value: Any) -> list:
        sizes = self._child_sizes()
        if value.ndim < 1 or value.shape[-1] != sum(sizes):
            raise ValueError(f"MultiDistribution.logp: expected actions structured as {self._structure()} or one "
                             f"array [B, {sum(sizes)}] (child action sizes {sizes}); received {describe(value)}")
        parts = jnp.split(value, np.cumsum(sizes)[:-1].tolist(), axis=-1)
        out = []
        for d, part in zip(self._flat(), parts):
            if isinstance(d, MultiDistribution):
                out.append(part)
                continue
            if not _action_shape(d):
                part = part[..., 0]
            integer = isinstance(d, (Categorical, MultiCategorical)) or (
                isinstance(d, Deterministic) and jnp.issubdtype(d.loc.dtype, jnp.integer))
            out.append(part.astype(jnp.int32) if integer and not jnp.issubdtype(part.dtype, jnp.integer) else part)
        return out

    def log_prob(self, value: Any) -> jax.Array:
        """The children's log-probs summed (distrax's Joint), for actions in any of RLlib's forms."""
        treedef = self._distributions_treedef
        n = treedef.num_leaves
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            values = self._split_flat(value)
        elif isinstance(value, list) and len(value) == n and not isinstance(self._distributions, list):
            values = value  # flattened by action component, in the children's order
        else:
            try:
                values = treedef.flatten_up_to(value)
            except (ValueError, TypeError):
                raise ValueError(f"MultiDistribution.logp: expected actions structured as {self._structure()} "
                                 f"(or one flat array); received {describe(value)}") from None
        values = [v if isinstance(d, MultiDistribution) else as_array(v, "MultiDistribution.logp", "an array per child")
                  for d, v in zip(self._flat(), values)]
        return super().log_prob(treedef.unflatten(values))

    def kl_divergence(self, other: Any, **kwargs: Any) -> jax.Array:
        """distrax's Joint-Joint KL (the children's KLs summed) with another MultiDistribution of the
        same structure and child families; anything else is an error naming both."""
        self._check_kl_partner(other, MultiDistribution)
        return super().kl_divergence(other, **kwargs)

    def __getitem__(self, index: Any) -> "MultiDistribution":
        """Every child indexed along its batch axes (distrax's Joint, keeping this class)."""
        return MultiDistribution(jax.tree_util.tree_map(lambda d: d[index], self._distributions, is_leaf=_is_dist))

    def to_deterministic(self) -> "MultiDistribution":
        return MultiDistribution(
            jax.tree_util.tree_map(lambda d: d.to_deterministic(), self._distributions, is_leaf=_is_dist)
        )
