"""BC learner: maximise the log-likelihood of recorded actions (RLlib's BC = MARWIL, beta 0)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxrl_modules.algorithms.data_parallel import make_data_parallel
from jaxrl_modules.algorithms.minibatch import minibatch_epochs
from jaxrl_modules.algorithms.optim import adam_with_clip, optimizer_metrics
from jaxrl_modules.apis import SelfSupervisedLossAPI
from jaxrl_modules.columns import Columns


class BCLearnerState(NamedTuple):
    params: Any
    opt_state: Any


class BCLearner:
    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return []

    def __init__(self, module: Any, config: Any):
        self.module, self.config = module, config
        self.train_fn = module.phase_fn("train")
        self.data_parallel = make_data_parallel(config)
        self.optimizer = adam_with_clip(config.lr, config.grad_clip, config.adam_eps, config.grad_clip_by)

    def init(self, params: Any) -> BCLearnerState:
        return BCLearnerState(params, self.optimizer.init(params))

    def loss(self, params: Any, batch: dict) -> tuple:
        fwd = self.train_fn(params, batch)
        dist = self.module.get_train_action_dist_cls().from_logits(fwd[Columns.ACTION_DIST_INPUTS])
        loss = -dist.logp(batch[Columns.ACTIONS]).mean()
        if isinstance(self.module, SelfSupervisedLossAPI):
            loss = loss + self.module.self_supervised_loss(params, batch, fwd)
        return loss, {"policy_loss": loss}

    def update(self, state: BCLearnerState, batch: dict, rng: jax.Array) -> tuple[BCLearnerState, dict]:
        cfg = self.config
        dp = self.data_parallel
        batch = dp.shard_rows(batch, setting="train_batch_size_per_learner")
        size = jax.tree_util.tree_leaves(batch)[0].shape[0]
        params, opt_state, metrics = minibatch_epochs(self.loss, self.optimizer, state.params, state.opt_state, batch, rng,
                                                      cfg.num_epochs, max(1, size // min(cfg.minibatch_size * dp.size, size)),
                                                      step_metrics=lambda m, g, o: {**m, **optimizer_metrics(g, o, cfg.lr)},
                                                      shard=dp.shard_rows, multiple=dp.size)
        return dp.replicate(BCLearnerState(params, opt_state)), metrics
