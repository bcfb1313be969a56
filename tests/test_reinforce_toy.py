"""A toy algorithm written outside the library (REINFORCE with a value baseline) plugs into the skeleton
through the learner protocol alone and trains CartPole in both loops: the host loop over gymnasium and
fully inside one jit over gymnax (driver and `build_train_fn`). The algorithm itself is the 3 classes below."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl_modules.algorithms.driver import DrivenAlgorithm, make_driver
from jaxrl_modules.algorithms.targets import compute_gae, standardize
from jaxrl_modules.algorithms.learner import Rollout
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.apis import ValueFunctionAPI
from jaxrl_modules.columns import Columns


class ReinforceState(NamedTuple):
    params: Any
    opt_state: Any


class ReinforceLearner:
    """Monte-Carlo returns (bootstrapped at the rollout's end), a learned baseline, one Adam step."""

    @classmethod
    def rl_module_required_apis(cls) -> list:
        return [ValueFunctionAPI]

    def __init__(self, module: Any, config: Any):
        self.module, self.config, self.optimizer = module, config, optax.adam(config.lr)
        self.train_fn, self.values_fn = module.phase_fn("train"), module.compute_values_fn()

    def init(self, params: Any) -> ReinforceState:
        return ReinforceState(params, self.optimizer.init(params))

    def params(self, state: ReinforceState) -> Any:
        return state.params

    def with_params(self, state: ReinforceState, params: Any) -> ReinforceState:
        return state._replace(params=params)

    def learn(self, state: ReinforceState, rollout: Rollout, rng: jax.Array) -> tuple:
        traj, (T, N) = rollout.traj, rollout.traj[Columns.REWARDS].shape
        value = lambda obs: self.values_fn(state.params, {Columns.OBS: obs})  # noqa: E731
        dones = traj[Columns.TERMINATEDS] | traj[Columns.TRUNCATEDS]
        returns = compute_gae(traj[Columns.REWARDS], jnp.zeros((T, N)), dones, value(rollout.last_obs),
                              self.config.gamma, 1.0)[0]  # lambda 1, zero values: discounted returns
        flat = lambda x: x.reshape((T * N,) + x.shape[2:])  # noqa: E731
        batch = {Columns.OBS: flat(traj[Columns.OBS]), Columns.ACTIONS: flat(traj[Columns.ACTIONS]), "returns": flat(returns)}
        return self.update(state, batch, rng)

    def update(self, state: ReinforceState, batch: dict, rng: jax.Array) -> tuple:
        def loss(params):
            out = self.train_fn(params, batch)
            dist = self.module.get_train_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            logp = dist.logp(batch[Columns.ACTIONS])
            values = self.values_fn(params, batch, out.get(Columns.EMBEDDINGS))
            advantages = standardize(jax.lax.stop_gradient(batch["returns"] - values))
            policy_loss, vf_loss = -(logp * advantages).mean(), ((values - batch["returns"]) ** 2).mean()
            return policy_loss + 0.5 * vf_loss, {"policy_loss": policy_loss, "vf_loss": vf_loss}

        (_, metrics), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
        updates, opt_state = self.optimizer.update(grads, state.opt_state)
        return ReinforceState(optax.apply_updates(state.params, updates), opt_state), metrics


class Reinforce(DrivenAlgorithm):
    def _make_driver(self):
        return make_driver(self.config)  # the config's learner in the loop for its env


class ReinforceConfig(PPOConfig):  # PPO's default module (policy and value heads) and sampling settings
    get_algorithm_class = lambda self: Reinforce  # noqa: E731
    get_default_learner_class = lambda self: ReinforceLearner  # noqa: E731


def config(env: str) -> ReinforceConfig:
    return (ReinforceConfig().environment(env).env_runners(num_envs_per_env_runner=8, rollout_fragment_length=64)
            .rl_module(model_config={"fcnet_hiddens": [32]}).training(lr=0.01, train_batch_size_per_learner=512))


def first_and_last(returns: list) -> tuple:
    return float(np.mean(returns[:3])), float(np.mean(returns[-5:]))


@pytest.mark.slow
@pytest.mark.parametrize("env", ["CartPole-v1", "gymnax:CartPole-v1"])
def test_reinforce_trains_cartpole_through_the_driver_of_each_loop(env):
    algo = config(env).build()
    try:
        assert type(algo.learner) is ReinforceLearner and type(algo.driver).__name__ == (
            "IterationDriver" if env.startswith("gymnax") else "HostDriver")
        returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(40)]
    finally:
        algo.stop()
    first, last = first_and_last(returns)
    assert last > max(100.0, 3 * first), returns  # random play is ~22


def test_reinforce_trains_in_one_jit_through_build_train_fn():
    train = config("gymnax:CartPole-v1").build_train_fn(40)
    params, metrics = jax.jit(train)(jax.random.key(0))
    returns = np.asarray(metrics["episode_return_mean"])
    assert int(metrics["first_nonfinite_iteration"][-1]) == -1 and set(params) == set(train.module.init(jax.random.key(1)))
    first, last = first_and_last(returns[np.isfinite(returns)].tolist())
    assert last > max(100.0, 3 * first), returns


def test_reinforce_seeds_vmap_in_one_jit_through_multi_seed_algorithm():
    from jaxrl_modules.algorithms.multi_seed import MultiSeedAlgorithm

    multi = MultiSeedAlgorithm(config("gymnax:CartPole-v1"), 2)
    result = multi.train()
    assert [s["num_env_steps_sampled_lifetime"] for s in result["seeds"]] == [512, 512]
    first, second = (multi.get_params(i) for i in range(2))
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(second)))
