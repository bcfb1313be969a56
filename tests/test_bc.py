"""BC clones a PPO policy from transitions recorded by our own rollout."""

import jax
import numpy as np
import pytest

from jaxrl_modules import Columns
from jaxrl_modules.algorithms.bc import BCConfig, load_transitions, record_transitions

from ppo_configs import gymnax_cartpole


@pytest.mark.slow
def test_bc_clones_a_trained_ppo_policy(tmp_path):
    train = gymnax_cartpole().build_train_fn(num_iterations=400)
    expert_params, _ = jax.jit(train)(jax.random.key(0))
    rec = record_transitions(train.module, expert_params, "CartPole-v1", 4000, tmp_path / "data" / "expert.npz")
    expert_return = float(np.mean(rec["episode_returns"]))
    assert expert_return > 300, expert_return
    data = load_transitions(tmp_path / "data")
    assert data[Columns.OBS].shape == (4000, 4) and data[Columns.ACTIONS].shape == (4000,)
    algo = (BCConfig().environment("CartPole-v1").offline_data(input_=tmp_path / "data")
            .rl_module(model_config={"fcnet_hiddens": [64, 64]})
            .training(lr=1e-3, train_batch_size_per_learner=2000, minibatch_size=250, num_epochs=2)).build()
    losses = [algo.train()["learners"]["default_policy"]["policy_loss"] for _ in range(30)]
    assert losses[-1] < 0.7 * losses[0], losses  # iteration 1 already learned most of ln 2
    cloned = algo.evaluate(episodes=5)["env_runners"]["episode_return_mean"]
    assert cloned >= 0.8 * expert_return, (cloned, expert_return)


def test_bc_needs_data(tmp_path):
    with pytest.raises(ValueError, match="offline_data"):
        BCConfig().environment("CartPole-v1").build()
    with pytest.raises(ValueError, match="No recorded transitions"):
        BCConfig().offline_data(input_=tmp_path / "none").build()


def test_bc_trains_on_whole_number_float_actions_of_a_discrete_space(tmp_path):
    # np.savez of actions kept as floats (e.g. from a float buffer): the data check accepts whole
    # numbers for Discrete spaces, so training must too (Categorical.logp takes int actions).
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", obs=rng.normal(size=(64, 4)).astype(np.float32),
             actions=rng.integers(0, 2, 64).astype(np.float32))
    algo = (BCConfig().environment("CartPole-v1").offline_data(input_=tmp_path / "data.npz")
            .rl_module(model_config={"fcnet_hiddens": [8]})
            .training(train_batch_size_per_learner=32, minibatch_size=32, num_epochs=1)).build()
    assert np.isfinite(algo.train()["learners"]["default_policy"]["policy_loss"])
