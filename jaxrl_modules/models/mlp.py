"""MLP building blocks: RLlib's MLP encoder (every layer activated) and MLP heads."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

default_kernel_init = nn.initializers.lecun_normal()
default_bias_init = nn.initializers.zeros


class MLP(nn.Module):
    """Dense layers of `hiddens` sizes, each followed by (LayerNorm and) `activation`,
    then an optional linear output layer of `output_dim` units.

    x: `[..., in]` -> `[..., output_dim or hiddens[-1]]`.
    """

    hiddens: Sequence[int]
    activation: Optional[Callable] = None
    output_dim: Optional[int] = None
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    output_kernel_init: Optional[Callable] = None
    use_layernorm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, size in enumerate(self.hiddens):
            x = nn.Dense(size, kernel_init=self.kernel_init, bias_init=self.bias_init, name=f"dense_{i}")(x)
            if self.use_layernorm:
                x = nn.LayerNorm(epsilon=1e-3, name=f"layernorm_{i}")(x)
            if self.activation is not None:
                x = self.activation(x)
        if self.output_dim is not None:
            x = nn.Dense(
                self.output_dim,
                kernel_init=self.output_kernel_init or self.kernel_init,
                bias_init=self.bias_init,
                name="out",
            )(x)
        return x


class FreeLogStdHead(nn.Module):
    """Mean from an MLP plus a state-independent learned log-std (initialised to 0).

    Output `[..., 2d]` = concat(mean, clip(log_std, ±clip)) as RLlib's free_log_std head.
    """

    hiddens: Sequence[int]
    activation: Optional[Callable]
    action_dim: int
    log_std_clip: float = 20.0
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    output_kernel_init: Optional[Callable] = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        mean = MLP(
            self.hiddens, self.activation, self.action_dim, self.kernel_init, self.bias_init,
            self.output_kernel_init, name="mean",
        )(x)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        log_std = jnp.clip(log_std, -self.log_std_clip, self.log_std_clip)
        return jnp.concatenate([mean, jnp.broadcast_to(log_std, mean.shape)], axis=-1)


class ClippedLogStdHead(nn.Module):
    """An MLP head whose second output half (the log-stds) is clipped to ±clip (RLlib)."""

    hiddens: Sequence[int]
    activation: Optional[Callable]
    output_dim: int
    log_std_clip: float = 20.0
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    output_kernel_init: Optional[Callable] = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out = MLP(
            self.hiddens, self.activation, self.output_dim, self.kernel_init, self.bias_init,
            self.output_kernel_init, name="net",
        )(x)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return jnp.concatenate([mean, jnp.clip(log_std, -self.log_std_clip, self.log_std_clip)], axis=-1)


