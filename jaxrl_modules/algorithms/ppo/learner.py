"""PPO learner as pure functions: the clipped loss with RLlib's terms and the minibatch update.

One optax optimizer covers the whole params pytree (a dict keyed by ModuleID for
multi-module setups), so a shared encoder gets one update per step. The state is a
NamedTuple, as in optax: `init(params) -> state`, `update(state, batch, rng) -> (state, metrics)`.

`multi_agent(policies_to_train=[...])` (RLlib's setting) trains only the listed modules: the others
still act (their params are in the state and used for values and actions) but are left out of the
loss, the gradient and the optimizer, so their params and KL coefficients stay exactly as they were,
and the learner metrics have entries for the trained modules only. A module that is not a policy
(e.g. a custom MultiRLModule's shared encoder) is a module too: it trains only when listed.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxrl_modules import validation as v
from jaxrl_modules.algorithms.algorithm_config import check_policies_to_train
from jaxrl_modules.algorithms.data_parallel import make_data_parallel
from jaxrl_modules.algorithms.minibatch import minibatch_epochs
from jaxrl_modules.algorithms.learner import Rollout
from jaxrl_modules.algorithms.optim import learning_rate, optimizer_for, optimizer_metrics
from jaxrl_modules.algorithms.ppo.postprocess import RESETS, rollout_batch, values_of
from jaxrl_modules.algorithms.targets import masked_mean
from jaxrl_modules.apis import SelfSupervisedLossAPI, ValueFunctionAPI
from jaxrl_modules.columns import Columns


class LearnerState(NamedTuple):
    params: Any
    opt_state: Any
    kl_coeff: Any  # {module_id: scalar}


def ppo_loss(module: Any, params: Any, batch: dict, fwd_out: dict, *, kl_coeff: jax.Array, clip_param: float,
             vf_clip_param: float, vf_loss_coeff: float, entropy_coeff: float, use_kl_loss: bool) -> tuple:
    """RLlib's PPO loss for one module (`PPOTorchLearner.compute_loss_for_module`), a pure function of
    params, batch and forward outputs with keyword hyper-parameters: `(total, metrics)`.

    batch: `[B]` columns ACTIONS, ACTION_LOGP, ACTION_DIST_INPUTS, ADVANTAGES, VALUE_TARGETS
    (and optional LOSS_MASK); fwd_out: the module's forward_train output.
    """
    mask = batch.get(Columns.LOSS_MASK)
    curr = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
    prev = module.get_exploration_action_dist_cls().from_logits(batch[Columns.ACTION_DIST_INPUTS])
    logp = curr.logp(batch[Columns.ACTIONS])
    ratio = jnp.exp(logp - batch[Columns.ACTION_LOGP])
    adv = batch[Columns.ADVANTAGES]
    surrogate = jnp.minimum(adv * ratio, adv * jnp.clip(ratio, 1 - clip_param, 1 + clip_param))
    values = module.compute_values_fn()(params, batch, fwd_out.get(Columns.EMBEDDINGS))
    vf_err = (values - batch[Columns.VALUE_TARGETS]) ** 2
    vf_clipped = jnp.clip(vf_err, 0.0, vf_clip_param)
    entropy = curr.entropy()
    total = masked_mean(-surrogate + vf_loss_coeff * vf_clipped - entropy_coeff * entropy, mask)
    mean_kl = masked_mean(prev.kl(curr), mask) if use_kl_loss else jnp.zeros(())
    total = total + (kl_coeff * mean_kl if use_kl_loss else 0.0)
    if isinstance(module, SelfSupervisedLossAPI):
        total = total + module.self_supervised_loss(params, batch, fwd_out)
    metrics = {"policy_loss": masked_mean(-surrogate, mask), "vf_loss": masked_mean(vf_clipped, mask),
               "entropy": masked_mean(entropy, mask), "mean_kl_loss": mean_kl, "total_loss": total}
    return total, metrics


def ppo_loss_settings(config: Any) -> dict:
    """`ppo_loss`'s hyper-parameters from a PPOConfig (read when the update is traced)."""
    return {k: getattr(config, k) for k in ("clip_param", "vf_clip_param", "vf_loss_coeff", "entropy_coeff", "use_kl_loss")}


class PPOLearner:
    """Builds the loss and the jittable update for a module (or MultiRLModule) and a config."""

    supports_multi_agent = True  # AlgorithmConfig lets `policies`/`policy_mapping_fn` through for PPO only

    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return [ValueFunctionAPI]

    def __init__(self, module: Any, config: Any, module_ids: Optional[list] = None, *, train_all: bool = False,
                 rows: Optional[int] = None):
        """`module_ids`: the policies (modules with a loss; default: those with an action space).
        `config.policies_to_train` (None: all) picks the modules updated, checked against the module's
        ids; `train_all=True` ignores it (a StackedPPOLearner's per-policy learner: it picks itself).
        `rows`: the rows of one iteration's batch, which `lr_schedule` counts minibatches of (default
        `rows_per_iteration(config)`; a JaxMARL loop's has a row per env and agent the policy acts for)."""
        from jaxrl_modules.multi_rl_module import MultiRLModule

        self.module = module
        self.config = config
        self.is_multi = isinstance(module, MultiRLModule)
        self.module_ids = list(module_ids) if module_ids is not None else (
            [m for m in module.keys() if module[m].action_space is not None] if self.is_multi else ["default_policy"])
        known = list(module.keys()) if self.is_multi else ["default_policy"]
        trained = known if train_all else check_policies_to_train(getattr(config, "policies_to_train", None), known)
        # Modules whose params the update leaves exactly as they are (never the single-agent module: the
        # config requires policies_to_train to name at least one module).
        self.frozen_ids = [m for m in known if m not in trained] if self.is_multi else []
        self.trained_ids = [m for m in self.module_ids if m in trained]
        require_a_trained_policy(self.trained_ids, self.module_ids, config)
        self.train_fn = module.phase_fn("train")
        self.data_parallel = make_data_parallel(config)
        # Updates per iteration for lr_schedule: epochs x minibatches of one rollout's batch.
        steps_per_iter = config.num_epochs * config.num_minibatches(rows or rows_per_iteration(config))
        self.optimizer = optimizer_for(config, steps_per_iter)
        self.lr = learning_rate(config, steps_per_iter)

    def init(self, params: Any) -> LearnerState:
        """Optimizer state over the trained modules' params (all of them unless `policies_to_train`
        leaves some out); a KL coefficient per policy."""
        kl = {mid: jnp.asarray(self.config.kl_coeff, jnp.float32) for mid in self.module_ids}
        return LearnerState(params, self.optimizer.init(self._trainable(params)), kl)

    def _trainable(self, params: Any) -> Any:
        """The params the optimizer updates: all of them, less the frozen modules'."""
        if not self.frozen_ids:
            return params
        return {mid: p for mid, p in params.items() if mid not in self.frozen_ids}

    def loss(self, params: Any, batch: dict, kl_coeff: dict) -> tuple:
        """Sum of the per-module PPO losses; `batch` is `{mid: [B] columns}` for multi-modules."""
        if not self.is_multi:
            fwd = self.train_fn(params, batch)
            return ppo_loss(self.module, params, batch, fwd, kl_coeff=kl_coeff["default_policy"],
                            **ppo_loss_settings(self.config))
        fwd = self.train_fn(params, batch)
        total, metrics = 0.0, {}
        for mid in batch:
            loss, m = ppo_loss(self.module[mid], params[mid], batch[mid], fwd[mid], kl_coeff=kl_coeff[mid],
                               **ppo_loss_settings(self.config))
            total = total + loss
            metrics[mid] = m
        return total, metrics

    def _step_metrics(self, metrics: dict, grads: Any, opt_state: Any) -> dict:
        """The loss metrics plus the grad norm and learning rate (per ModuleID for multi-modules)."""
        extra = optimizer_metrics(grads, opt_state, self.lr, list(metrics) if self.is_multi else None)
        if self.is_multi:
            return {mid: {**m, **extra[mid]} for mid, m in metrics.items()}
        return {**metrics, **extra}

    def params(self, state: LearnerState) -> Any:
        return state.params

    def with_params(self, state: LearnerState, params: Any) -> LearnerState:
        return state._replace(params=params)

    def values(self, state: LearnerState, batch: dict) -> Any:
        return values_of(self, state.params, batch)

    def learn(self, state: LearnerState, rollout: Rollout, rng: jax.Array) -> tuple[LearnerState, dict]:
        """The train batch of a rollout (values, GAE; sequences for a stateful module), then `update`."""
        return self.update(state, rollout_batch(self, state, rollout), rng)

    def update(self, state: LearnerState, batch: dict, rng: jax.Array) -> tuple[LearnerState, dict]:
        """`num_epochs` passes of shuffled minibatches over `batch` (leaves `[B, ...]`), then the
        adaptive KL-coefficient step. Pure and jittable. A sequence batch (`[B, L, ...]` chunks with a
        RESETS column, a stateful module's) is split into minibatches of `minibatch_size` timesteps.

        Multi-module: only the modules of `policies_to_train` are updated; the batches of the others
        are dropped, their params, optimizer state and KL coefficients returned unchanged, and the
        metrics (`{module_id: {...}}`) are reported for the trained modules only.

        Data-parallel learners (`num_learners > 1`) split `batch` and every minibatch over their devices
        (`minibatch_size` rows per learner); the state comes back replicated."""
        cfg, dp = self.config, self.data_parallel
        batch = dp.shard_rows(batch, setting="train_batch_size_per_learner")
        frozen = {}
        if self.frozen_ids:
            batch = {mid: b for mid, b in batch.items() if mid not in self.frozen_ids}
            frozen = {mid: state.params[mid] for mid in self.frozen_ids}
        size = jax.tree_util.tree_leaves(batch)[0].shape[0]
        num_minibatches = max(1, size * batch[RESETS].shape[1] // (cfg.minibatch_size * dp.size)) if RESETS in batch else None
        trainable, opt_state, metrics = minibatch_epochs(
            lambda p, mb: self.loss({**frozen, **p} if frozen else p, mb, state.kl_coeff), self.optimizer,
            self._trainable(state.params), state.opt_state, batch, rng, cfg.num_epochs,
            num_minibatches or cfg.num_minibatches(size), cfg.shuffle_batch_per_epoch, self._step_metrics, dp.shard_rows,
            dp.size)
        params = {mid: frozen.get(mid, trainable.get(mid)) for mid in state.params} if frozen else trainable
        kl_coeff = dict(state.kl_coeff)
        if cfg.use_kl_loss:
            for mid in (metrics if self.is_multi else kl_coeff):
                kl = (metrics[mid] if self.is_multi else metrics)["mean_kl_loss"]
                kl_coeff[mid] = jnp.where(kl > 2 * cfg.kl_target, kl_coeff[mid] * 1.5,
                                          jnp.where(kl < 0.5 * cfg.kl_target, kl_coeff[mid] * 0.5, kl_coeff[mid]))
        return dp.replicate(LearnerState(params, opt_state, kl_coeff)), metrics


def require_a_trained_policy(trained_ids: list, policy_ids: list, config: Any) -> None:
    """A ValueError naming `policies_to_train` when it selects no policy (e.g. only a shared
    encoder): no loss would reach any module, so training would silently change nothing."""
    if not trained_ids:
        v.fail("policies_to_train", f"a collection including at least one policy of {list(policy_ids)} (only a policy's "
               "loss trains anything, a shared encoder included)", getattr(config, "policies_to_train", None))


def rows_per_iteration(config: Any) -> int:
    """Rows of one single-agent iteration's batch: steps per env x envs, the envs being
    `max(1, num_env_runners) * num_envs_per_env_runner` (x processes in a multi-process host loop;
    "auto" steps split the global train batch over them)."""
    from jaxrl_modules.algorithms.jaxmarl_runner import is_jaxmarl
    from jaxrl_modules.envs.registry import is_gymnax

    envs = max(1, int(getattr(config, "num_env_runners", 0) or 0)) * config.num_envs_per_env_runner
    if not (is_gymnax(config.env) or is_jaxmarl(config.env)):
        envs *= jax.process_count()  # a host loop's envs are per process; the all-in-jit loop's are the run's
    if config.rollout_fragment_length == "auto":
        return max(1, config.total_batch_size() // envs) * envs
    return int(config.rollout_fragment_length) * envs


def check_multi_agent_settings(config: Any) -> None:
    """Settings the multi-agent loop (a MultiRLModule over a multi-agent env) does not read are refused
    rather than ignored: it steps one env (`num_envs_per_env_runner` must stay 1) `train_batch_size //
    num_agents` times per iteration (`rollout_fragment_length` must stay "auto") and feeds each agent's
    observation to its module as it is (`env_to_module_connector` must stay None)."""
    if config.num_envs_per_env_runner != 1:
        v.fail("num_envs_per_env_runner", "1 for multi-agent PPO (the multi-agent env runner steps one multi-agent "
               "env; each iteration's batch comes from train_batch_size // num_agents steps of it)",
               config.num_envs_per_env_runner)

    if config.rollout_fragment_length != "auto":
        v.fail("rollout_fragment_length", "'auto' for multi-agent PPO (each iteration steps the multi-agent env "
               "train_batch_size // num_agents times)", config.rollout_fragment_length)
    if config.env_to_module_connector is not None:
        v.fail("env_to_module_connector", "None for multi-agent PPO (the multi-agent env runner feeds each agent's "
               "observation to its module as it is)", config.env_to_module_connector)
