"""`episode_return_mean` means one thing on every loop: the mean return of the episodes that ended
during the iteration, carried forward from the last iteration in which one ended (NaN before the
first); `num_episodes` counts the episodes that ended in the iteration (0: carried).

The envs here have fixed-length episodes and pay k per step in their k-th episode, so each
iteration's expected value is known (a trailing window over past episodes would differ)."""

import math

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules.algorithms import register_env
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.ppo import PPOConfig

TINY = {"fcnet_hiddens": [8]}


class CounterEnv(gym.Env):
    """Episodes of `length` steps; every step of this copy's k-th episode (k = 1, 2, ...) pays k."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, config: dict):
        self.length, self.k, self.t = int(config.get("length", 5)), 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.t = self.k + 1, 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), float(self.k), self.t >= self.length, False, {}


class MultiAgentCounterEnv:
    """Two agents; agent 0 acts 2 steps, agent 1 acts 4 steps per episode; each step of the k-th episode pays k."""

    def __init__(self, config: dict):
        self.possible_agents = self.agents = [0, 1]
        self.lengths = {0: 2, 1: 4}
        self.observation_space = self.action_space = None
        self.observation_spaces = {a: CounterEnv.observation_space for a in self.agents}
        self.action_spaces = {a: CounterEnv.action_space for a in self.agents}
        self.k, self.t = 0, 0

    def reset(self, *, seed=None, options=None):
        self.k, self.t = self.k + 1, 0
        return {a: np.zeros(1, np.float32) for a in self.agents}, {}

    def step(self, actions):
        self.t += 1
        obs = {a: np.array([self.t], np.float32) for a in actions}
        term = {a: self.t >= self.lengths[a] for a in actions}
        term["__all__"] = self.t >= max(self.lengths.values())
        return obs, {a: float(self.k) for a in actions}, term, {a: False for a in actions}, {}


register_env("counter_env", CounterEnv)
register_env("multi_counter_env", MultiAgentCounterEnv)


class CounterGymnax:
    """The gymnax form of CounterEnv (the episode counter survives gymnax's auto-reset)."""

    def __init__(self, length: int):
        self.length = length

    def observation_space(self, params):
        from gymnax.environments import spaces

        return spaces.Box(-1e6, 1e6, (1,), jnp.float32)

    def action_space(self, params):
        from gymnax.environments import spaces

        return spaces.Discrete(2)

    def reset(self, key, params=None):
        return jnp.zeros(1, jnp.float32), {"t": jnp.zeros((), jnp.int32), "k": jnp.ones((), jnp.int32)}

    def step(self, key, state, action, params=None):
        t = state["t"] + 1
        done = t >= self.length
        new = {"t": jnp.where(done, 0, t), "k": jnp.where(done, state["k"] + 1, state["k"])}
        obs = jnp.where(done, 0.0, t.astype(jnp.float32))[None]
        return obs, new, state["k"].astype(jnp.float32), done, jnp.zeros((), bool), {}


@pytest.fixture
def gymnax_counter(monkeypatch):
    """`gymnax:Counter-v0` (env_config `length`) through the registry's `gymnax.make`."""
    import gymnax

    make = gymnax.make
    monkeypatch.setattr(gymnax, "make", lambda name, **kw: (CounterGymnax(kw.get("length", 5)), None)
                        if name == "Counter-v0" else make(name, **kw))


def _returns(algo, iterations):
    results = [algo.train()["env_runners"] for _ in range(iterations)]
    algo.stop()
    return [r["episode_return_mean"] for r in results], [r["num_episodes"] for r in results]


def _same(got, expected):
    assert len(got) == len(expected) and all(
        (math.isnan(g) and math.isnan(e)) if math.isnan(e) else g == pytest.approx(e) for g, e in zip(got, expected)), got


# Episodes of 5 steps, 3 steps per env per iteration, 2 envs: episodes end at steps 5, 10, 15 (iterations 2, 4, 5)
# with returns 5, 10, 15; iteration 3 carries 5 (a window over all past episodes would report 7.5 in iteration 4).
PPO_EXPECTED = ([math.nan, 5.0, 5.0, 10.0, 15.0], [0, 2, 0, 2, 2])


def _ppo(env, **env_config):
    return (PPOConfig().environment(env, env_config=env_config).env_runners(num_envs_per_env_runner=2)
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=6, minibatch_size=6, num_epochs=1)).build()


def test_ppo_host_loop_reports_the_episodes_that_ended_in_the_iteration():
    means, counts = _returns(_ppo("counter_env", length=5), 5)
    _same(means, PPO_EXPECTED[0])
    assert counts == PPO_EXPECTED[1]


def test_ppo_gymnax_loop_reports_the_episodes_that_ended_in_the_iteration(gymnax_counter):
    means, counts = _returns(_ppo("gymnax:Counter-v0", length=5), 5)
    _same(means, PPO_EXPECTED[0])
    assert counts == PPO_EXPECTED[1]


# DQN samples 1000 env steps per train(): with 10 envs, 100 steps each. Episodes of 70 steps end at steps
# 70, 140, 210 and 280 (returns 70, 140, 210, 280): iteration 3 averages 210 and 280.
DQN_EXPECTED = ([70.0, 140.0, 245.0], [10, 10, 20])


def _dqn(env):
    return (DQNConfig().environment(env, env_config={"length": 70}).env_runners(num_envs_per_env_runner=10)
            .rl_module(model_config=TINY).training(num_steps_sampled_before_learning_starts=10**6, train_batch_size=8)).build()


def test_dqn_host_loop_reports_the_episodes_that_ended_in_the_iteration():
    means, counts = _returns(_dqn("counter_env"), 3)
    _same(means, DQN_EXPECTED[0])
    assert counts == DQN_EXPECTED[1]


def test_dqn_gymnax_loop_reports_the_episodes_that_ended_in_the_iteration(gymnax_counter):
    means, counts = _returns(_dqn("gymnax:Counter-v0"), 3)
    _same(means, DQN_EXPECTED[0])
    assert counts == DQN_EXPECTED[1]


def test_multi_agent_loop_reports_episode_and_per_module_returns_of_the_iteration():
    # 2 env steps per iteration (batch 4 over 2 agents); episodes take 4 steps: they end in iterations 2 and 4.
    # Episode k pays k per agent step: 6k in all, 2k to agent 0 (module p0), 4k to agent 1 (module p1).
    algo = (PPOConfig().environment("multi_counter_env")
            .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=4, minibatch_size=4, num_epochs=1)).build()
    results = [algo.train()["env_runners"] for _ in range(4)]
    _same([r["episode_return_mean"] for r in results], [math.nan, 6.0, 6.0, 12.0])
    assert [r["num_episodes"] for r in results] == [0, 1, 0, 1]
    _same([r["module_episode_returns_mean"]["p0"] for r in results], [math.nan, 2.0, 2.0, 4.0])
    _same([r["module_episode_returns_mean"]["p1"] for r in results], [math.nan, 4.0, 4.0, 8.0])
    returns = algo.evaluate(episodes=2)["env_runners"]["episode_returns"]
    assert returns == [6.0, 12.0]  # a fresh env's episodes 1 and 2, summed over the agents
    algo.stop()


def test_run_episodes_counts_each_env_first_episode_only():
    from jaxrl_modules.algorithms.jax_evaluate import run_episodes

    env = CounterGymnax(4)

    def policy(params, obs, state, key):
        return jnp.zeros(obs.shape[0], jnp.int32), state

    out = jax.jit(lambda k: run_episodes(env, None, policy, {}, k, 3, max_steps=50))(jax.random.key(0))
    # each env runs its first episode (4 steps paying 1); the loop stops once all are done
    np.testing.assert_array_equal(out["returns"], [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(out["lengths"], [4, 4, 4])
    assert out["finished"].all()
    cut = run_episodes(env, None, policy, {}, jax.random.key(0), 2, max_steps=3)
    assert not cut["finished"].any() and list(cut["lengths"]) == [3, 3]


def test_gymnax_evaluation_compiles_its_rollout_once(gymnax_counter):
    """Evaluating every K iterations (train --eval-every) reuses one jitted rollout per episode count."""
    algo = _ppo("gymnax:Counter-v0", length=5)
    algo.train()
    first = algo.evaluate(3)["env_runners"]["episode_returns"]
    algo.train()
    second = algo.evaluate(3)["env_runners"]["episode_returns"]
    assert first == second == [5.0, 5.0, 5.0]  # fresh envs: each env's first 5-step episode pays 1 per step
    (rollout,) = algo._eval_cache.values()
    assert rollout._cache_size() == 1


# ----------------------------------------------------------------- the carried value survives save/restore
def _save_restore(algo, build, tmp_path):
    """`algo` saved, then restored into a fresh algorithm from `build()`; both returned (algo stopped)."""
    path = algo.save_to_path(tmp_path / "ckpt")
    algo.stop()
    fresh = build()
    fresh.restore_from_path(path)
    return fresh, path


def _dqn_180(env):
    return (DQNConfig().environment(env, env_config={"length": 180}).env_runners(num_envs_per_env_runner=10)
            .rl_module(model_config=TINY).training(num_steps_sampled_before_learning_starts=10**6, train_batch_size=8)).build()


# PPO: 3 steps per env per iteration, episodes of 5 (return 5) end in iteration 2; after the restore, the host loop's
# fresh envs take 3 of 5 steps and the gymnax envs (restored) steps 7-9 of 10. DQN: 100 steps per env per iteration,
# episodes of 180 (return 180) end in iteration 2; after it, fresh envs take steps 1-100, restored ones 201-300 of 360.
CARRY_CASES = {"ppo-host": (lambda: _ppo("counter_env", length=5), 5.0),
               "ppo-gymnax": (lambda: _ppo("gymnax:Counter-v0", length=5), 5.0),
               "dqn-host": (lambda: _dqn_180("counter_env"), 180.0), "dqn-gymnax": (lambda: _dqn_180("gymnax:Counter-v0"), 180.0)}


@pytest.mark.parametrize("case", list(CARRY_CASES))
def test_restored_algorithm_carries_the_saved_episode_return_mean(case, tmp_path, gymnax_counter, fast_compiles):
    import json

    build, value = CARRY_CASES[case]
    algo = build()
    assert [algo.train()["env_runners"]["num_episodes"] > 0 for _ in range(2)] == [False, True]
    fresh, path = _save_restore(algo, build, tmp_path)
    assert json.loads((tmp_path / "ckpt" / "algorithm.json").read_text())["episode_return_mean"] == value
    result = fresh.train()["env_runners"]
    assert result == {"episode_return_mean": value, "num_episodes": 0}
    fresh.stop()


def test_checkpoint_without_the_carried_return_restores_carrying_nan(tmp_path, fast_compiles):
    import json

    build = lambda: _ppo("counter_env", length=5)  # noqa: E731
    algo = build()
    before = algo.train()["env_runners"]
    assert math.isnan(before["episode_return_mean"])
    path = algo.save_to_path(tmp_path / "ckpt")
    meta_file = tmp_path / "ckpt" / "algorithm.json"
    meta = json.loads(meta_file.read_text())
    assert meta["episode_return_mean"] is None  # no episode had ended: null
    for _ in range(2):
        algo.train()
    path = algo.save_to_path(tmp_path / "ckpt")
    meta = json.loads(meta_file.read_text())
    del meta["episode_return_mean"]  # as written before the key existed
    meta_file.write_text(json.dumps(meta))
    algo.stop()
    fresh = build()
    fresh.restore_from_path(path)
    assert fresh.iteration == 3
    assert math.isnan(fresh.train()["env_runners"]["episode_return_mean"])
    meta["episode_return_mean"] = "5"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="'episode_return_mean' must be a finite number or null; got '5'"):
        fresh.restore_from_path(path)
    fresh.stop()


def test_restored_multi_agent_ppo_carries_episode_and_module_returns(tmp_path, fast_compiles):
    import json

    def build():
        return (PPOConfig().environment("multi_counter_env")
                .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
                .rl_module(model_config=TINY).training(train_batch_size_per_learner=4, minibatch_size=4, num_epochs=1)).build()

    algo = build()
    assert [algo.train()["env_runners"]["num_episodes"] for _ in range(2)] == [0, 1]  # episode 1 (6 = 2 + 4) ended
    fresh, _ = _save_restore(algo, build, tmp_path)
    meta = json.loads((tmp_path / "ckpt" / "algorithm.json").read_text())
    assert meta["module_episode_returns_mean"] == {"p0": 2.0, "p1": 4.0}
    result = fresh.train()["env_runners"]  # a fresh env: 2 of its 4 steps, no episode ends
    assert result["num_episodes"] == 0 and result["episode_return_mean"] == 6.0
    assert result["module_episode_returns_mean"] == {"p0": 2.0, "p1": 4.0}
    fresh.stop()
