"""Algorithm-specific RLModule APIs, as mixins a module declares (RLlib's `apis`).

An author implements the bound hook (`_compute_values`, `_compute_q_values`,
`_forward_target`, ...) on the RLModule subclass; the mixin supplies, in the style of
`RLModule.phase_fn`, the pure un-jitted function (`compute_values_fn()`,
`compute_q_values_fn()`, `forward_target_fn()`) that learners call inside their own jitted,
differentiated losses, and the public jitted method (`compute_values`, `compute_q_values`,
`forward_target`), a one-line wrapper around it built once per module instance. Learners
never call the hooks by name (`apply(..., method="_...")`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import jax
import optax



class ValueFunctionAPI:
    """Modules with a value function: `compute_values(params, batch, embeddings=None) -> [B]`."""

    def _compute_values(self, batch: dict, embeddings: Optional[Any] = None) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} declares ValueFunctionAPI but lacks _compute_values")

    def compute_values_fn(self) -> Callable[..., jax.Array]:
        """The pure, un-jitted `(params, batch, embeddings=None) -> [B]` behind `compute_values`
        (for a learner's jitted loss, vmap and grad); batch and params are checked when traced."""
        def fn(params: Any, batch: dict, embeddings: Optional[Any] = None) -> jax.Array:
            self._validate_batch(batch)
            self._check_params(params, "compute_values")
            return self.apply({"params": params}, batch, embeddings, method="_compute_values")

        return fn

    def compute_values(self, params: Any, batch: dict, embeddings: Optional[Any] = None) -> jax.Array:
        """Value predictions `[B]` (`[B, T]` for stateful modules); pass the forward_train
        output's EMBEDDINGS to reuse them instead of encoding again."""
        return self._cached(("compute_values",), lambda: jax.jit(self.compute_values_fn()))(params, batch, embeddings)


class QNetAPI:
    """Modules with Q-values: `compute_q_values(params, batch) -> {"qf_preds": [B, n], ...}`."""

    def _compute_q_values(self, batch: dict) -> dict:
        raise NotImplementedError(f"{type(self).__name__} declares QNetAPI but lacks _compute_q_values")

    def compute_q_values_fn(self) -> Callable[[Any, dict], dict]:
        """The pure, un-jitted `(params, batch) -> {"qf_preds": ...}` behind `compute_q_values`
        (differentiable in params: SAC's actor loss calls it)."""
        def fn(params: Any, batch: dict) -> dict:
            self._validate_batch(batch)
            self._check_params(params, "compute_q_values")
            return self.apply({"params": params}, batch, method="_compute_q_values")

        return fn

    def compute_q_values(self, params: Any, batch: dict) -> dict:
        """Q values of `batch` under `params` (jitted `compute_q_values_fn()`)."""
        return self._cached(("compute_q_values",), lambda: jax.jit(self.compute_q_values_fn()))(params, batch)

    def compute_advantage_distribution(self, params: Any, batch: dict) -> dict:
        return self.compute_q_values(params, batch)


class TargetNetworkAPI:
    """Modules with target networks. Target params are a separate pytree with the same
    leaf paths as the main params they shadow (`make_target_params`); `forward_target`
    runs `_forward_target` on them. Polyak/hard updates: `update_target_params`."""

    def _forward_target(self, batch: dict) -> dict:
        raise NotImplementedError(f"{type(self).__name__} declares TargetNetworkAPI but lacks _forward_target")

    def make_target_params(self, params: Any) -> Any:
        """The initial target params: a copy of the main params (RLlib's deepcopy)."""
        return jax.tree_util.tree_map(lambda x: x.copy(), params)

    def forward_target_fn(self) -> Callable[[Any, dict], dict]:
        """The pure, un-jitted `(target_params, batch) -> dict` behind `forward_target`."""
        def fn(target_params: Any, batch: dict) -> dict:
            self._validate_batch(batch)
            self._check_params(target_params, "forward_target")
            return self.apply({"params": target_params}, batch, method="_forward_target")

        return fn

    def forward_target(self, target_params: Any, batch: dict) -> dict:
        """The target network's output on `batch["obs"]` (jitted `forward_target_fn()`)."""
        return self._cached(("forward_target",), lambda: jax.jit(self.forward_target_fn()))(target_params, batch)

    @staticmethod
    def update_target_params(params: Any, target_params: Any, tau: float) -> Any:
        """Polyak averaging `tau * main + (1 - tau) * target` (tau=1 is a hard copy), as
        `optax.incremental_update`; the learners gate it with `optax.periodic_update`."""
        return optax.incremental_update(params, target_params, step_size=tau)


class InferenceOnlyAPI:
    """Modules that drop learner-only parts when `inference_only=True`."""

    def get_non_inference_attributes(self) -> list[str]:
        raise NotImplementedError

    def inference_params(self, params: dict) -> dict:
        """Params of the inference-only twin: the learner params minus the non-inference parts."""
        drop = {name.split(".")[0] for name in self.get_non_inference_attributes()}
        return {k: v for k, v in params.items() if k not in drop}


class SelfSupervisedLossAPI:
    """Modules that add their own loss term: `compute_self_supervised_loss(batch, fwd_out)`,
    authored as a bound hook; the learner adds `self_supervised_loss(params, batch, fwd_out)`."""

    def compute_self_supervised_loss(self, batch: dict, fwd_out: dict) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} declares SelfSupervisedLossAPI but lacks its loss")

    def self_supervised_loss(self, params: Any, batch: dict, fwd_out: dict) -> jax.Array:
        """Pure function of params (differentiable); use inside the learner's loss."""
        return self.apply({"params": params}, batch, fwd_out, method="compute_self_supervised_loss")


ALL_APIS = (ValueFunctionAPI, QNetAPI, TargetNetworkAPI, InferenceOnlyAPI, SelfSupervisedLossAPI)


def check_required_apis(module: Any, required: Iterable[type], module_id: Optional[str] = None) -> None:
    """Raises ValueError naming the module (id) and every required API it does not implement."""
    missing = [api.__name__ for api in required if not isinstance(module, api)]
    if missing:
        who = f"module {module_id!r} ({type(module).__name__})" if module_id else type(module).__name__
        raise ValueError(f"{who} must implement {missing} for this algorithm; it implements "
                         f"{[a.__name__ for a in ALL_APIS if isinstance(module, a)] or 'no APIs'}.")
