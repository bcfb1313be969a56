"""No hidden mutable state: the gymnax runner holds configuration only (the recurrent initial state
rides in `RunnerState`), `build_train_fn` returns a frozen `TrainFn` and leaves the config as it
was, and `evaluate(episodes)` runs exactly that many complete episodes on every algorithm and loop."""

import copy
import dataclasses

import jax
import numpy as np
import pytest

from jaxrl_modules.algorithms.bc import BCConfig, record_transitions
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.algorithms.ppo.jax_train import JaxPPO
from jaxrl_modules.algorithms.sac import SACConfig
from jaxrl_modules.algorithms.train_fn import TrainFn
from jaxrl_modules.envs import MultiAgentCartPole

TINY = {"fcnet_hiddens": [8]}
LSTM = {"fcnet_hiddens": [8], "use_lstm": True, "lstm_cell_size": 8, "max_seq_len": 4}
EPISODES = 3


def tiny_ppo(env="gymnax:CartPole-v1", model_config=TINY):
    return (PPOConfig().environment(env).env_runners(num_envs_per_env_runner=2, rollout_fragment_length=8)
            .rl_module(model_config=model_config).training(train_batch_size=16, minibatch_size=8, num_epochs=1))


def tiny_off_policy(config_cls, env):
    return (config_cls().environment(env).env_runners(num_envs_per_env_runner=1, rollout_fragment_length=1)
            .rl_module(model_config=TINY)
            .training(train_batch_size_per_learner=8, num_steps_sampled_before_learning_starts=8,
                      replay_buffer_config={"capacity": 64}))


# ----------------------------------------------------------------- the runner holds configuration only
def test_recurrent_runner_state_carries_the_initial_state_and_the_runner_is_not_written():
    ppo = JaxPPO(tiny_ppo(model_config=LSTM))
    before = dict(vars(ppo.runner))
    state = jax.jit(ppo.init)(jax.random.key(0))
    initial = ppo.module.get_initial_state()
    assert jax.tree_util.tree_structure(state.runner.initial_state) == jax.tree_util.tree_structure(initial)
    for got, want in zip(jax.tree_util.tree_leaves(state.runner.initial_state), jax.tree_util.tree_leaves(initial)):
        np.testing.assert_array_equal(got, want)  # no batch axis
    state, metrics = jax.jit(ppo.iteration)(state)  # init and iteration traced apart: nothing leaks between them
    assert int(metrics["nonfinite_code"]) == -1
    assert vars(ppo.runner) == before


def test_recurrent_all_in_jit_ppo_trains_and_evaluates_the_requested_episodes():
    algo = tiny_ppo(model_config=LSTM).build()
    assert len(algo.evaluate(EPISODES)["env_runners"]["episode_returns"]) == EPISODES
    algo.train()
    result = algo.evaluate(EPISODES)["env_runners"]
    assert len(result["episode_returns"]) == result["num_episodes"] == EPISODES
    assert all(r >= 1.0 for r in result["episode_returns"])  # CartPole pays 1 per step of a complete episode


# ----------------------------------------------------------------- build_train_fn
def test_train_fn_is_a_frozen_object_that_jit_and_vmap_accept():
    train = tiny_ppo(model_config=LSTM).build_train_fn(num_iterations=2)
    assert isinstance(train, TrainFn) and train.module.is_stateful()
    assert train.nonfinite_names[:2] == ("env observation", "env reward")
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.module = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.jax_ppo = None  # nothing can be tagged onto it
    keys = jax.random.split(jax.random.key(0), 2)
    params, metrics = jax.jit(train)(keys[0])
    assert metrics["episode_return_mean"].shape == (2,)
    assert int(metrics["first_nonfinite_iteration"][-1]) == -1
    seeds_params, seeds_metrics = jax.jit(jax.vmap(train))(keys)
    assert seeds_metrics["episode_return_mean"].shape == (2, 2)
    for one, first_seed in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(seeds_params)):
        np.testing.assert_allclose(one, first_seed[0], rtol=1e-4, atol=1e-5)  # seed 0 of the vmap is train(keys[0])
    state = jax.jit(train.init)(jax.random.key(1))  # the pieces are public: one iteration by hand
    _, step_metrics = jax.jit(train.iteration)(state)
    assert int(step_metrics["nonfinite_code"]) == -1


def test_off_policy_train_fn_is_a_train_fn_too():
    train = tiny_off_policy(DQNConfig, "gymnax:CartPole-v1").build_train_fn(num_iterations=2)
    assert isinstance(train, TrainFn)
    _, metrics = jax.jit(train)(jax.random.key(0))
    assert metrics["num_episodes"].shape == (2,) and "env observation" in train.nonfinite_names


def _dqn_with_direct_assignments():
    config = tiny_off_policy(DQNConfig, "gymnax:CartPole-v1")
    config.replay_buffer_config = {"capacity": 64}  # assigned directly: validate() normalises it (on a copy)
    config.epsilon = 0.1
    return config


@pytest.mark.parametrize("make", [
    lambda: tiny_ppo().training(lr_schedule="linear"),  # total_iterations comes from num_iterations, on a copy
    _dqn_with_direct_assignments,
    lambda: tiny_off_policy(SACConfig, "gymnax:Pendulum-v1"),
], ids=["ppo", "dqn", "sac"])
def test_build_train_fn_and_build_leave_the_config_unchanged(make):
    config = make()
    before = copy.deepcopy(vars(config))
    config.build_train_fn(num_iterations=3)
    assert vars(config) == before
    assert config.total_iterations is None
    if config.lr_schedule is not None:  # build_train_fn set total_iterations on its copy only
        with pytest.raises(ValueError, match="total_iterations"):
            config.build()
    else:
        config.build()
    assert vars(config) == before


# ----------------------------------------------------------------- evaluate(episodes) on every loop
def _bc(tmp_path):
    ppo = tiny_ppo("CartPole-v1").build()
    record_transitions(ppo.get_module(), ppo.get_params(), "CartPole-v1", 64, tmp_path / "expert.npz")
    return (BCConfig().environment("CartPole-v1").offline_data(input_=tmp_path)
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=32, minibatch_size=16))


CASES = {
    "ppo-host": (lambda tmp: tiny_ppo("CartPole-v1"), 1),
    "ppo-gymnax": (lambda tmp: tiny_ppo(), 1),
    "ppo-gymnax-lstm": (lambda tmp: tiny_ppo(model_config=LSTM), 1),
    "ppo-multi-agent": (lambda tmp: (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
                                     .rl_module(model_config=TINY)
                                     .training(train_batch_size=32, minibatch_size=16, num_epochs=1)), 1),
    "dqn-host": (lambda tmp: tiny_off_policy(DQNConfig, "CartPole-v1"), 0),
    "dqn-gymnax": (lambda tmp: tiny_off_policy(DQNConfig, "gymnax:CartPole-v1"), 0),
    "sac-host": (lambda tmp: tiny_off_policy(SACConfig, "Pendulum-v1"), 0),
    "sac-gymnax": (lambda tmp: tiny_off_policy(SACConfig, "gymnax:Pendulum-v1"), 0),
    "bc": (_bc, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_evaluate_runs_exactly_the_requested_episodes(case, tmp_path):
    make, iterations = CASES[case]
    algo = make(tmp_path).evaluation(evaluation_duration=2).build()
    for _ in range(iterations):
        algo.train()
    result = algo.evaluate(EPISODES)["env_runners"]
    assert len(result["episode_returns"]) == result["num_episodes"] == EPISODES
    assert result["episode_return_mean"] == pytest.approx(np.mean(result["episode_returns"]))
    assert len(algo.evaluate()["env_runners"]["episode_returns"]) == 2  # None: evaluation_duration
    for bad in (0, -1, 2.5, True):
        with pytest.raises((ValueError, TypeError), match="episodes"):
            algo.evaluate(bad)
