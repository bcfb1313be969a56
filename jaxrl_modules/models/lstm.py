"""LSTM over time with state resets, as wrapped around a tokenizer when `use_lstm=True`."""

from __future__ import annotations

from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl_modules.models.mlp import default_bias_init, default_kernel_init


class _ResettingLSTMCell(nn.Module):
    features: int
    kernel_init: Callable
    bias_init: Callable

    @nn.compact
    def __call__(self, carry: tuple, inputs: tuple) -> tuple:
        x, reset = inputs
        keep = (1.0 - reset.astype(x.dtype))[:, None]
        c, h = carry[0] * keep, carry[1] * keep
        cell = nn.OptimizedLSTMCell(
            self.features, kernel_init=self.kernel_init, recurrent_kernel_init=self.kernel_init,
            bias_init=self.bias_init, name="cell",
        )
        (c, h), y = cell((c, h), x)
        return (c, h), y


class LSTM(nn.Module):
    """One LSTM layer unrolled with `lax.scan` over the time axis.

    x: `[B, T, in]`; state: `{"h": [B, cell], "c": [B, cell]}`; resets: optional `[B, T]`
    bool, true where the state is zeroed *before* step t (a new episode starts there).
    Returns (`[B, T, cell]`, final state).
    """

    cell_size: int
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init

    @nn.compact
    def __call__(self, x: jax.Array, state: dict, resets: Optional[jax.Array] = None) -> tuple:
        if resets is None:
            resets = jnp.zeros(x.shape[:2], dtype=bool)
        scan = nn.scan(
            _ResettingLSTMCell, variable_broadcast="params", split_rngs={"params": False},
            in_axes=1, out_axes=1,
        )
        (c, h), ys = scan(self.cell_size, self.kernel_init, self.bias_init, name="lstm")(
            (state["c"], state["h"]), (x, resets)
        )
        return ys, {"h": h, "c": c}
