"""MLP building blocks: RLlib's MLP encoder (every layer activated) and MLP heads."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

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
                kernel_init=self.kernel_init,
                bias_init=self.bias_init,
                name="out",
            )(x)
        return x


class GaussianHead(nn.Module):
    """A DiagGaussian policy head: `[..., 2d]` = concat(mean, log_std), log-std clipped to ±clip.

    With `free_log_std` the log-std is a learned state-independent parameter (initialised
    to 0, RLlib's free_log_std head); otherwise it is the second half of an MLP's output.
    `use_layernorm` (head_fcnet_use_layernorm) puts a LayerNorm after each hidden layer of the
    MLP, as for every other head.
    """

    hiddens: Sequence[int]
    activation: Optional[Callable]
    action_dim: int
    free_log_std: bool = False
    log_std_clip: float = 20.0
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    use_layernorm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out_dim = self.action_dim if self.free_log_std else 2 * self.action_dim
        out = MLP(self.hiddens, self.activation, out_dim, self.kernel_init, self.bias_init, self.use_layernorm,
                  name="mean" if self.free_log_std else "net")(x)
        if self.free_log_std:
            mean = out
            log_std = jnp.broadcast_to(self.param("log_std", nn.initializers.zeros, (self.action_dim,)), mean.shape)
        else:
            mean, log_std = jnp.split(out, 2, axis=-1)
        return jnp.concatenate([mean, jnp.clip(log_std, -self.log_std_clip, self.log_std_clip)], axis=-1)
