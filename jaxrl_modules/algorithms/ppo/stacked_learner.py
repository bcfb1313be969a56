"""N independent PPO policies of identical structure updated as one vmapped computation.

Params, optimizer states and KL coefficients carry a leading module axis; each policy has
its own Adam state and gradient clipping, exactly as N separate learners would, but all N
updates compile once and run in one call.

With `multi_agent(policies_to_train=[...])` only the listed policies' slices of the stacked state are
updated (gathered, updated, scattered back); the others keep their params, optimizer state and KL
coefficient exactly, and the metrics have entries for the trained policies only.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import numpy as np

from jaxrl_modules.algorithms.algorithm_config import check_policies_to_train
from jaxrl_modules.algorithms.learner import Rollout
from jaxrl_modules.algorithms.ppo.learner import LearnerState, PPOLearner, require_a_trained_policy, values_of
from jaxrl_modules.algorithms.ppo.postprocess import rollout_batch
from jaxrl_modules.stacked import stack_trees, unstack_tree


class StackedPPOLearner:
    """Same interface as PPOLearner over `{mid: ...}` params and batches."""

    def __init__(self, multi: Any, config: Any, module_ids: list[str], rows: Optional[int] = None):
        self.module, self.config = multi, config
        self.module_ids = list(module_ids)
        self.is_multi = True
        self.single = PPOLearner(multi[self.module_ids[0]], config, train_all=True, rows=rows)
        trained = check_policies_to_train(getattr(config, "policies_to_train", None), list(multi.keys()))
        self.trained_ids = [m for m in self.module_ids if m in trained]
        self.frozen_ids = [m for m in self.module_ids if m not in trained]
        require_a_trained_policy(self.trained_ids, self.module_ids, config)
        self._trained_index = np.asarray([self.module_ids.index(m) for m in self.trained_ids], np.int32)

    def init(self, params: dict) -> LearnerState:
        return jax.vmap(self.single.init)(stack_trees([params[m] for m in self.module_ids]))

    def params(self, state: LearnerState) -> dict:
        return dict(zip(self.module_ids, unstack_tree(state.params, len(self.module_ids))))

    def with_params(self, state: LearnerState, params: dict) -> LearnerState:
        return state._replace(params=stack_trees([params[m] for m in self.module_ids]))

    def values(self, state: LearnerState, batch: dict) -> dict:
        stacked = stack_trees([batch[m] for m in self.module_ids])
        values = jax.vmap(lambda p, b: values_of(self.single, p, b))(state.params, stacked)
        return dict(zip(self.module_ids, unstack_tree(values, len(self.module_ids))))

    def learn(self, state: LearnerState, rollout: Rollout, rng: jax.Array) -> tuple[LearnerState, dict]:
        """Every policy's train batch (values of all in one vmapped call), then `update`."""
        return self.update(state, rollout_batch(self, state, rollout), rng)

    def update(self, state: LearnerState, batch: dict, rng: jax.Array) -> tuple[LearnerState, dict]:
        """Each trained policy's PPO update (the same, key included, as when every policy trains);
        metrics `{module_id: {...}}` for the trained policies only."""
        keys = jax.random.split(rng, len(self.module_ids))
        if not self.frozen_ids:
            stacked = stack_trees([batch[m] for m in self.module_ids])
            state, metrics = jax.vmap(self.single.update)(state, stacked, keys)
            return state, dict(zip(self.module_ids, unstack_tree(metrics, len(self.module_ids))))
        idx = self._trained_index
        stacked = stack_trees([batch[m] for m in self.trained_ids])
        sub = jax.tree_util.tree_map(lambda x: x[idx], state)
        sub, metrics = jax.vmap(self.single.update)(sub, stacked, keys[idx])
        state = jax.tree_util.tree_map(lambda x, y: x.at[idx].set(y), state, sub)
        return state, dict(zip(self.trained_ids, unstack_tree(metrics, len(self.trained_ids))))


def make_ppo_learner(module: Any, config: Any, num_envs: Optional[int] = None) -> Any:
    """PPO's learner for `module`: for a MultiRLModule, its policies (the modules with an action space)
    train as one vmapped `StackedPPOLearner` update when they are identical independent policies (a
    plain MultiRLModule of one module class and spec), else through one `PPOLearner` over the dict.
    `num_envs`: a policy's batch rows of one env step (a JaxMARL loop's: envs x the agents it acts for), for
    lr_schedule's count;
    None: the config's single-agent count."""
    from jaxrl_modules.multi_rl_module import MultiRLModule

    rows = None if num_envs is None else config.rollout_length() * int(num_envs)
    if not isinstance(module, MultiRLModule):
        return PPOLearner(module, config, rows=rows)
    policy_ids = [m for m in module.keys() if module[m].action_space is not None]
    specs = module._specs()
    stackable = (type(module) is MultiRLModule and len(policy_ids) >= 2 and set(policy_ids) == set(module.keys())
                 and len(module._groups(policy_ids, None)) == 1
                 and all(specs[m].module_class is specs[policy_ids[0]].module_class for m in policy_ids))
    if stackable:
        return StackedPPOLearner(module, config, policy_ids, rows)
    return PPOLearner(module, config, module_ids=policy_ids, rows=rows)
