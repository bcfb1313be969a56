"""SAC learner: twin-Q critic, reparameterised actor, learned temperature, polyak targets."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl_modules.algorithms.sac.module import QF_PREDS, QF_TARGET_NEXT, QF_TWIN_PREDS
from jaxrl_modules.algorithms.data_parallel import make_data_parallel
from jaxrl_modules.algorithms.optim import GRAD_NORM, adam_with_clip
from jaxrl_modules.apis import QNetAPI, TargetNetworkAPI
from jaxrl_modules.columns import Columns


class SACLearnerState(NamedTuple):
    params: Any
    target_params: Any
    opt_state: Any
    log_alpha: jax.Array
    alpha_opt_state: Any
    num_updates: jax.Array


def sac_critic_loss(q: jax.Array, q_twin: jax.Array, rewards: jax.Array, terminateds: jax.Array, q_next: jax.Array,
                    next_logp: jax.Array, *, alpha: jax.Array, gamma: float) -> jax.Array:
    """Twin-Q soft Bellman loss: both critics against `r + gamma * (1 - terminated) * (Q'(s', a') - alpha
    * log pi(a'|s'))` (`q_next` the target critics' minimum at sampled next actions); shapes `[B]`."""
    not_done = 1.0 - terminateds.astype(jnp.float32)
    y = jax.lax.stop_gradient(rewards + gamma * not_done * (q_next - alpha * next_logp))
    return 0.5 * ((q - y) ** 2).mean() + 0.5 * ((q_twin - y) ** 2).mean()


def sac_actor_loss(logp: jax.Array, q_pi: jax.Array, *, alpha: jax.Array) -> jax.Array:
    """`E[alpha * log pi(a|s) - Q(s, a)]` over reparameterised actions (critic params held fixed)."""
    return (alpha * logp - q_pi).mean()


def sac_alpha_loss(log_alpha: jax.Array, logp: jax.Array, *, target_entropy: float) -> jax.Array:
    """The temperature loss `-log_alpha * (log pi + target_entropy)` (logp held fixed)."""
    return -(log_alpha * (logp + target_entropy)).mean()


class SACLearner:
    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return [QNetAPI, TargetNetworkAPI]

    def __init__(self, module: Any, config: Any):
        self.module, self.config = module, config
        # The module's pure functions, traced into the jitted update; the module names its Q subtrees.
        self.train_fn = module.phase_fn("train")
        self.pi_fn = module.action_dist_inputs_fn()
        self.q_fn = module.compute_q_values_fn()
        self.target_fn = module.forward_target_fn()
        self.q_keys = frozenset(module.q_param_keys())
        self.data_parallel = make_data_parallel(config)
        self.optimizer = optax.multi_transform(
            {"actor": adam_with_clip(config.actor_lr, config.grad_clip, config.adam_eps, config.grad_clip_by),
             "critic": adam_with_clip(config.critic_lr, config.grad_clip, config.adam_eps, config.grad_clip_by)},
            lambda params: {k: jax.tree_util.tree_map(lambda _: "critic" if k in self.q_keys else "actor", v)
                            for k, v in params.items()})
        self.alpha_optimizer = optax.adam(config.alpha_lr)
        target = config.target_entropy
        self.target_entropy = -float(np.prod(module.action_space.shape)) if target in (None, "auto") else float(target)

    def init(self, params: Any) -> SACLearnerState:
        log_alpha = jnp.log(jnp.asarray(self.config.initial_alpha, jnp.float32))
        return SACLearnerState(params, self.module.make_target_params(params), self.optimizer.init(params), log_alpha,
                               self.alpha_optimizer.init(log_alpha), jnp.zeros((), jnp.int32))

    def _dist(self, fwd: dict) -> Any:
        return self.module.get_train_action_dist_cls().from_logits(fwd[Columns.ACTION_DIST_INPUTS])

    def loss(self, params: Any, state: SACLearnerState, batch: dict, rng: jax.Array) -> tuple:
        cfg = self.config
        alpha = jnp.exp(state.log_alpha)
        k_next, k_curr = jax.random.split(rng)
        next_fwd = self.pi_fn(params, {Columns.OBS: batch[Columns.NEXT_OBS]})
        next_actions, next_logp = self._dist(next_fwd).sample_and_log_prob(seed=k_next)
        target_batch = {Columns.OBS: batch[Columns.NEXT_OBS], Columns.ACTIONS: next_actions}
        q_next = self.target_fn(state.target_params, target_batch)[QF_TARGET_NEXT]
        fwd = self.train_fn(params, batch)
        critic_loss = sac_critic_loss(fwd[QF_PREDS], fwd[QF_TWIN_PREDS], batch[Columns.REWARDS], batch[Columns.TERMINATEDS],
                                      q_next, next_logp, alpha=alpha, gamma=cfg.gamma)
        actions, logp = self._dist(fwd).sample_and_log_prob(seed=k_curr)
        frozen_q = jax.lax.stop_gradient({k: v for k, v in params.items() if k in self.q_keys})
        q_params = {**params, **frozen_q}
        q_pi = self.q_fn(q_params, {Columns.OBS: batch[Columns.OBS], Columns.ACTIONS: actions})[QF_PREDS]
        actor_loss = sac_actor_loss(logp, q_pi, alpha=alpha)
        metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha": alpha, "logp_mean": logp.mean(),
                   "qf_mean": fwd[QF_PREDS].mean()}
        return critic_loss + actor_loss, (metrics, jax.lax.stop_gradient(logp))

    def params(self, state: SACLearnerState) -> Any:
        return state.params

    def with_params(self, state: SACLearnerState, params: Any) -> SACLearnerState:
        return state._replace(params=params)

    def update(self, state: SACLearnerState, batch: dict, rng: jax.Array) -> tuple[SACLearnerState, dict]:
        """One step of actor, critics and alpha; data-parallel learners split `batch` over their devices."""
        batch = self.data_parallel.shard_rows(batch, setting="train_batch_size_per_learner")
        (_, (metrics, logp)), grads = jax.value_and_grad(self.loss, has_aux=True)(state.params, state, batch, rng)
        metrics = {**metrics, GRAD_NORM: optax.global_norm(grads)}  # actor and critic (their own lrs: actor_lr, critic_lr)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        alpha_grad = jax.grad(sac_alpha_loss)(state.log_alpha, logp, target_entropy=self.target_entropy)
        alpha_updates, alpha_opt_state = self.alpha_optimizer.update(alpha_grad, state.alpha_opt_state)
        log_alpha = optax.apply_updates(state.log_alpha, alpha_updates)
        n = state.num_updates + 1
        target = self.module.update_target_params(params, state.target_params, self.config.tau)
        if self.config.target_network_update_freq > 1:  # 0 (RLlib's default) and 1: every update
            target = optax.periodic_update(target, state.target_params, n, self.config.target_network_update_freq)
        return self.data_parallel.replicate(SACLearnerState(params, target, opt_state, log_alpha, alpha_opt_state, n)), metrics
