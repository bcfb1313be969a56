"""DQN: replay buffer, default module (dueling, epsilon-greedy, target params), TD targets, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import Columns
from jaxrl_modules.algorithms import replay_buffer as rb
from jaxrl_modules.algorithms.dqn import DefaultDQNRLModule, DQNConfig
from jaxrl_modules.algorithms.dqn.learner import td_targets
from jaxrl_modules.algorithms.dqn.module import QF_PREDS
from jaxrl_modules.apis import QNetAPI, TargetNetworkAPI

from conftest import CARTPOLE_ACT, CARTPOLE_OBS


def test_replay_buffer_ring_and_sampling():
    state = rb.init_buffer({"x": jnp.zeros(2), "a": jnp.zeros((), jnp.int32)}, capacity=5)
    state = jax.jit(rb.add)(state, {"x": jnp.ones((3, 2)), "a": jnp.arange(3)})
    assert int(state.size) == 3 and int(state.pos) == 3
    state = rb.add(state, {"x": 2 * jnp.ones((4, 2)), "a": jnp.arange(3, 7)})
    assert int(state.size) == 5 and int(state.pos) == 2
    assert state.data["a"].tolist() == [5, 6, 2, 3, 4]  # the oldest two were overwritten
    small = rb.add(rb.init_buffer({"a": jnp.zeros((), jnp.int32)}, 100), {"a": jnp.array([7, 8])})
    assert set(rb.sample(small, jax.random.key(0), 64)["a"].tolist()) <= {7, 8}
    with pytest.raises(ValueError, match="capacity"):
        rb.init_buffer({"a": jnp.zeros(())}, 0)


def test_masked_add_and_n_step_returns():
    state = rb.add(rb.init_buffer({"a": jnp.zeros(())}, 4), {"a": jnp.array([1.0, 2.0, 3.0])}, jnp.array([True, False, True]))
    assert int(state.size) == 2 and state.data["a"].tolist() == [1.0, 3.0, 0.0, 0.0]
    step = {"o": jnp.zeros((2,)), "a": jnp.zeros((2,), jnp.int32), "r": jnp.zeros((2,)), "d": jnp.zeros((2,), bool),
            "n": jnp.zeros((2,))}
    window = rb.init_nstep(jax.tree_util.tree_map(lambda x: x[0], step), 3, 2)
    rewards = [[1.0, 1.0], [2.0, 2.0], [4.0, 4.0], [8.0, 8.0]]
    dones = [[False, False], [False, True], [False, False], [False, False]]
    outs = []
    for t in range(4):
        s_t = {"o": jnp.full((2,), t, jnp.float32), "a": jnp.full((2,), t, jnp.int32), "r": jnp.array(rewards[t]),
               "d": jnp.array(dones[t]), "n": jnp.full((2,), t + 1, jnp.float32)}
        window, out, valid = rb.nstep_push(window, s_t, 0.5, "o", "a", "r", "d", "n")
        outs.append((out, valid))
    assert [bool(v[0]) for _, v in outs] == [False, False, True, True]
    out = outs[2][0]  # the transition starting at t=0
    assert out["o"].tolist() == [0.0, 0.0] and out["a"].tolist() == [0, 0]
    # env 0: 1 + 0.5*2 + 0.25*4, bootstraps from new_obs of t=2 with 0.5**3; env 1 ends at t=1: 1 + 0.5*2, no bootstrap
    assert out["r"].tolist() == [3.0, 2.0] and out["n"].tolist() == [3.0, 2.0]
    assert out["d"].tolist() == [False, True] and out["discounts"].tolist() == [0.125, 0.25]


@pytest.fixture(scope="module")
def dqn():
    m = DefaultDQNRLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT,
                           model_config={"fcnet_hiddens": [16], "epsilon": [[0, 1.0], [100, 0.0]]})
    return m, m.init(jax.random.key(0))


def test_dqn_module_heads_and_epsilon_greedy(dqn):
    m, params = dqn
    assert isinstance(m, QNetAPI) and isinstance(m, TargetNetworkAPI) and set(params) == {"encoder", "af", "vf"}
    obs = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)
    q = m.compute_q_values(params, {Columns.OBS: obs})[QF_PREDS]
    greedy = m.forward_inference(params, {Columns.OBS: obs})[Columns.ACTIONS]
    assert jnp.array_equal(greedy, jnp.argmax(q, -1))
    at_start = m.forward_exploration(params, {Columns.OBS: obs}, jax.random.key(1), t=0)[Columns.ACTIONS]
    at_end = m.forward_exploration(params, {Columns.OBS: obs}, jax.random.key(1), t=1000)[Columns.ACTIONS]
    assert jnp.array_equal(at_end, greedy)
    assert 0.3 < float(jnp.mean(at_start != greedy)) < 0.7  # epsilon 1.0: uniform random actions
    # Dueling: Q = V + A - mean(A).
    emb = m.apply({"params": params}, obs, method=lambda mod, o: mod.encoder(o)[0])
    adv = m.apply({"params": params}, emb, method=lambda mod, e: mod.af(e))
    v = m.apply({"params": params}, emb, method=lambda mod, e: mod.vf(e))
    assert jnp.allclose(q, v + adv - adv.mean(-1, keepdims=True), atol=1e-5)


def test_target_params_are_a_separate_pytree(dqn):
    m, params = dqn
    target = m.make_target_params(params)
    batch = {Columns.OBS: np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)}
    assert jnp.allclose(m.forward_target(target, batch)[QF_PREDS], m.compute_q_values(params, batch)[QF_PREDS])
    moved = jax.tree_util.tree_map(lambda x: x + 1.0, params)
    half = m.update_target_params(moved, target, 0.5)
    assert jnp.allclose(half["af"]["out"]["bias"], target["af"]["out"]["bias"] + 0.5)


def test_td_targets_double_q():
    q_target = jnp.array([[1.0, 5.0], [2.0, 0.0]])
    q_online = jnp.array([[3.0, 0.0], [0.0, 1.0]])
    r, term = jnp.array([1.0, 1.0]), jnp.array([False, True])
    assert td_targets(r, term, q_target, q_online, 0.5).tolist() == [1.0 + 0.5 * 1.0, 1.0]  # online picks a=0
    assert td_targets(r, term, q_target, None, 0.5).tolist() == [1.0 + 0.5 * 5.0, 1.0]


def test_dqn_config_names_and_errors():
    c = DQNConfig()
    assert (c.double_q, c.dueling, c.n_step, c.target_network_update_freq, c.tau, c.lr) == (True, True, 1, 500, 1.0, 5e-4)
    assert c.get_default_learner_class().rl_module_required_apis() == [QNetAPI, TargetNetworkAPI]
    assert c.merged_model_config(None)["dueling"] is True
    with pytest.raises(ValueError, match="n_step"):
        DQNConfig().training(n_step=0)
    assert DQNConfig().training(n_step=3).n_step == 3
    with pytest.raises(ValueError, match="Unknown training setting 'doubleq'"):
        DQNConfig().training(doubleq=False)


@pytest.mark.slow
def test_dqn_all_in_jit_solves_cartpole():
    config = (DQNConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=10, rollout_fragment_length=1)
              .rl_module(model_config={"fcnet_hiddens": [120, 84], "fcnet_activation": "relu"})
              .training(lr=2.5e-4, train_batch_size=128, epsilon=[(0, 1.0), (125000, 0.05)],
                        num_steps_sampled_before_learning_starts=10000, target_network_update_freq=50,
                        replay_buffer_config={"capacity": 10000}, grad_clip=10.0, dueling=False, td_error_loss_fn="mse"))
    params, metrics = jax.jit(config.build_train_fn(num_iterations=32000))(jax.random.key(0))
    returns = np.asarray(metrics["episode_return_mean"])
    assert np.nanmean(returns[:2000]) < 60
    # solved: a window of 4000 iterations (40k env steps) in the second half averages >= 450 (DQN on CartPole
    # forgets and relearns: the last window alone ranges 320-500 over seeds, measured before and after issue 11)
    windows = [np.nanmean(returns[i:i + 4000]) for i in range(16000, 32000, 4000)]
    assert max(windows) >= 450, windows


DQN_CARTPOLE = dict(lr=2.5e-4, train_batch_size=128, epsilon=[(0, 1.0), (125000, 0.05)],
                    num_steps_sampled_before_learning_starts=10000, target_network_update_freq=50,
                    replay_buffer_config={"capacity": 10000}, grad_clip=10.0, dueling=False, td_error_loss_fn="mse")


@pytest.mark.slow
def test_dqn_host_loop_solves_cartpole_with_3_step_returns():
    algo = (DQNConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=10)
            .rl_module(model_config={"fcnet_hiddens": [120, 84], "fcnet_activation": "relu"})
            .training(**DQN_CARTPOLE, n_step=3).debugging(seed=0)).build()
    ret = 0.0
    for _ in range(330):
        ret = algo.train()["env_runners"]["episode_return_mean"]
        if ret >= 450:
            break
    assert ret >= 450, ret
    assert algo.evaluate(episodes=2)["env_runners"]["episode_return_mean"] > 300


@pytest.mark.slow
def test_dqn_algorithm_on_gymnax_resumes(tmp_path):
    def config():
        return (DQNConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=4, rollout_fragment_length=5)
                .rl_module(model_config={"fcnet_hiddens": [16]})
                .training(num_steps_sampled_before_learning_starts=100, replay_buffer_config={"capacity": 500}))

    straight = config().build()
    results = [straight.train() for _ in range(3)]
    assert results[-1]["num_env_steps_sampled_lifetime"] == 3 * 1000
    first = config().build()
    first.train()
    first.save_to_path(tmp_path / "dqn")
    resumed = config().build()
    resumed.restore_from_path(tmp_path / "dqn")
    resumed.train(), resumed.train()
    for a, b in zip(jax.tree_util.tree_leaves(straight.get_params()), jax.tree_util.tree_leaves(resumed.get_params())):
        assert np.array_equal(a, b)
    assert isinstance(resumed.get_module(), DefaultDQNRLModule)
