"""DQN learner as pure functions: (double) Q-learning TD targets from a target-params pytree,
Huber or MSE loss, one optax optimizer, polyak/hard target updates."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxrl_modules.algorithms.dqn.module import QF_NEXT_PREDS, QF_PREDS
from jaxrl_modules.algorithms.data_parallel import make_data_parallel
from jaxrl_modules.algorithms.optim import adam_with_clip, optimizer_metrics
from jaxrl_modules.algorithms.targets import td_targets
from jaxrl_modules.apis import QNetAPI, TargetNetworkAPI
from jaxrl_modules.columns import Columns


class DQNLearnerState(NamedTuple):
    params: Any
    target_params: Any
    opt_state: Any
    num_updates: jax.Array


def q_loss(q_values: jax.Array, q_next_target: jax.Array, batch: dict, *, q_next_online: Optional[jax.Array],
           gamma: float, td_error_loss_fn: str, action_start: int = 0) -> tuple:
    """DQN's TD loss as a pure function of Q values `[B, n]` (online on OBS, target on NEXT_OBS, and
    online on NEXT_OBS for double Q) and the batch (ACTIONS, REWARDS, TERMINATEDS, optional
    "discounts" of n-step transitions), with keyword hyper-parameters: `(loss, metrics)`."""
    target = jax.lax.stop_gradient(td_targets(batch[Columns.REWARDS], batch[Columns.TERMINATEDS], q_next_target,
                                              q_next_online, batch.get("discounts", gamma)))
    index = batch[Columns.ACTIONS].astype(jnp.int32) - action_start
    q = jnp.take_along_axis(q_values, index[:, None], axis=-1)[:, 0]  # Q column i is action start + i
    err = q - target
    losses = optax.huber_loss(err) if td_error_loss_fn == "huber" else 0.5 * err ** 2
    return losses.mean(), {"qf_loss": losses.mean(), "qf_mean": q.mean(), "td_error_mean": jnp.abs(err).mean()}


class DQNLearner:
    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return [QNetAPI, TargetNetworkAPI]

    def __init__(self, module: Any, config: Any):
        self.module, self.config = module, config
        self.train_fn = module.phase_fn("train")  # the module's pure functions, traced into the jitted update
        self.target_fn = module.forward_target_fn()
        self.optimizer = adam_with_clip(config.lr, config.grad_clip, config.adam_eps, config.grad_clip_by)
        self.data_parallel = make_data_parallel(config)

    def init(self, params: Any) -> DQNLearnerState:
        return DQNLearnerState(params, self.module.make_target_params(params), self.optimizer.init(params),
                               jnp.zeros((), jnp.int32))

    def loss(self, params: Any, target_params: Any, batch: dict) -> tuple:
        """The module's forward passes (online on OBS, target on NEXT_OBS), then `q_loss`."""
        cfg = self.config
        fwd = self.train_fn(params, batch)
        q_next_target = self.target_fn(target_params, {Columns.OBS: batch[Columns.NEXT_OBS]})[QF_PREDS]
        return q_loss(fwd[QF_PREDS], q_next_target, batch, q_next_online=fwd.get(QF_NEXT_PREDS) if cfg.double_q else None,
                      gamma=cfg.gamma, td_error_loss_fn=cfg.td_error_loss_fn,
                      action_start=int(getattr(self.module.action_space, "start", 0)))

    def params(self, state: DQNLearnerState) -> Any:
        return state.params

    def with_params(self, state: DQNLearnerState, params: Any) -> DQNLearnerState:
        return state._replace(params=params)

    def update(self, state: DQNLearnerState, batch: dict, rng: jax.Array | None = None) -> tuple[DQNLearnerState, dict]:
        """One gradient step; then the target params follow every `target_network_update_freq`
        updates by `tau` (1.0 = hard copy). Data-parallel learners split `batch` over their devices."""
        batch = self.data_parallel.shard_rows(batch, setting="train_batch_size_per_learner")
        (_, metrics), grads = jax.value_and_grad(self.loss, has_aux=True)(state.params, state.target_params, batch)
        metrics = {**metrics, **optimizer_metrics(grads, state.opt_state, self.config.lr)}
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        n = state.num_updates + 1  # RLlib syncs after the update whose 1-based count is a multiple of the period
        polyak = self.module.update_target_params(params, state.target_params, self.config.tau)
        target = optax.periodic_update(polyak, state.target_params, n, self.config.target_network_update_freq)
        return self.data_parallel.replicate(DQNLearnerState(params, target, opt_state, n)), metrics
