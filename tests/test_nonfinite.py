"""Training never continues on NaN/inf: every algorithm and both loops stop at the right
iteration with a `NonFiniteError` naming the first non-finite quantity, keep their last finite
params, and a NaN observation never reaches `env.step` as an action."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules.algorithms import jit_loop
from jaxrl_modules.algorithms.bc import BCConfig
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.nonfinite import NonFiniteError, first_nonfinite, nonfinite_code, quantity_names
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.envs.registry import make_gymnax, register_env
from jaxrl_modules.algorithms.sac import SACConfig
from jaxrl_modules.columns import Columns
from jaxrl_modules.envs import MultiAgentCartPole

TINY = {"fcnet_hiddens": [8]}


pytestmark = pytest.mark.usefixtures("fast_compiles")  # conftest: tiny runs compile faster


class Poisoned(gym.Wrapper):
    """Counts `step` calls (across resets). A vector copy knows its index from its first reset
    seed (the config's seed 0 plus the index); from step `after` on, the copies listed in `bad`
    return a NaN reward (or observation)."""

    def __init__(self, env, after, what, bad):
        super().__init__(env)
        self.after, self.what, self.bad, self.steps, self.index = after, what, bad, 0, None

    def reset(self, *, seed=None, options=None):
        if seed is not None and self.index is None:
            self.index = seed
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        self.steps += 1
        if self.steps >= self.after and self.index in self.bad:
            if self.what == "reward":
                reward = float("nan")
            else:
                obs = np.full_like(obs, np.nan)
        return obs, reward, term, trunc, info


ENVS: dict = {}


def _make(config):
    env = Poisoned(gym.make(config["id"]), config["after"], config["what"], config["bad"])
    ENVS.setdefault(config["key"], []).append(env)
    return env


register_env("nonfinite_test_env", _make)


def poisoned_env(key, env_id="CartPole-v1", after=1, what="reward", bad=(0,)):
    """An env_config for "nonfinite_test_env"; `ENVS[key]` collects the envs it creates."""
    ENVS.pop(key, None)
    return {"id": env_id, "after": after, "what": what, "bad": tuple(bad), "key": key}


class PoisonedGymnax:
    """A gymnax env whose reward is NaN from its `after`-th step on (per env copy)."""

    def __init__(self, env, after):
        self.env, self.after = env, after

    def reset(self, key, params=None):
        obs, state = self.env.reset(key, params)
        return obs, (state, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params=None):
        inner, n = state
        obs, inner, reward, term, trunc, info = self.env.step(key, inner, action, params)
        n = n + 1
        return obs, (inner, n), jnp.where(n >= self.after, jnp.nan, reward), term, trunc, info

    def observation_space(self, params):
        return self.env.observation_space(params)

    def action_space(self, params):
        return self.env.action_space(params)


@pytest.fixture
def nan_gymnax(monkeypatch):
    """`gymnax:` envs whose reward turns NaN at env step `after` (set the returned dict's value)."""
    setting = {"after": 1}

    def make(env, env_config):
        env, params = make_gymnax(env, env_config)
        return PoisonedGymnax(env, setting["after"]), params

    monkeypatch.setattr(jit_loop, "make_gymnax", make)  # the all-in-jit loop of every algorithm
    return setting


def finite(tree):
    return all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(tree))


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


# ----------------------------------------------------------------- the pure functions
def test_first_nonfinite_names_metrics_and_param_leaf_paths():
    params = {"pi": {"Dense_0": {"kernel": np.ones((2, 3)), "bias": np.zeros(3)}}, "vf": {"out": {"kernel": np.ones(2)}}}
    tree = {"metrics": {"policy_loss": np.float32(1.0), "vf_loss": np.float32(0.5)}, "params": params,
            "env reward": np.zeros(4)}
    assert first_nonfinite(tree) == (False, None)
    params["pi"]["Dense_0"]["kernel"][1, 2] = np.inf
    assert first_nonfinite(tree) == (True, "params['pi']['Dense_0']['kernel']")
    tree["metrics"]["vf_loss"] = np.float32("nan")
    assert first_nonfinite(tree) == (True, "vf_loss")  # losses come before params
    tree["env reward"][3] = np.nan
    assert first_nonfinite(tree) == (True, "env reward")  # the env comes first
    names = quantity_names(tree)
    assert names[int(jax.jit(nonfinite_code)(tree))] == "env reward"
    assert int(jax.jit(nonfinite_code)({"metrics": {"a": jnp.ones(2)}, "steps": jnp.arange(3)})) == -1


def test_error_is_a_floating_point_error_with_its_parts():
    err = NonFiniteError("policy_loss", 3, "value nan")
    assert isinstance(err, FloatingPointError)
    assert (err.quantity, err.iteration) == ("policy_loss", 3)
    assert "training iteration 3" in str(err) and "policy_loss" in str(err) and "last finite" in str(err)


# ----------------------------------------------------------------- host loops
def test_ppo_host_stops_at_the_iteration_the_env_reward_turns_nan():
    # 2 envs x 16 steps per iteration; env 1's 40th step (iteration 3, step 7) gives a NaN reward
    algo = (PPOConfig().environment("nonfinite_test_env", env_config=poisoned_env("ppo", after=40, bad=(1,)))
            .env_runners(num_envs_per_env_runner=2, rollout_fragment_length=16).rl_module(model_config=TINY)
            .training(train_batch_size_per_learner=32, minibatch_size=16, num_epochs=1)).build()
    algo.train(), algo.train()
    before = algo.get_params()
    expected = r"training iteration 3: non-finite env reward: env index 1 at sampling step 7"
    with pytest.raises(NonFiniteError, match=expected) as info:
        algo.train()
    assert info.value.iteration == 3 and info.value.quantity == "env reward"
    assert same(algo.get_params(), before) and algo.iteration == 2


def test_ppo_host_raises_on_a_nan_observation_before_stepping_the_env():
    # env 0's 5th step returns a NaN observation; it must never be acted on
    algo = (PPOConfig().environment("nonfinite_test_env", env_config=poisoned_env("obs", after=5, what="obs"))
            .env_runners(num_envs_per_env_runner=2, rollout_fragment_length=16).rl_module(model_config=TINY)
            .training(train_batch_size_per_learner=32, minibatch_size=16, num_epochs=1)).build()
    with pytest.raises(NonFiniteError, match=r"training iteration 1: non-finite env observation: env index 0 at "
                                             r"sampling step 5 gave \[nan nan nan nan\]"):
        algo.train()
    steps = [env.steps for env in ENVS["obs"]]
    assert steps[-2:] == [5, 5]  # the two vector copies (after the probe): never stepped with the NaN obs


def test_ppo_host_names_the_param_leaf_and_keeps_the_finite_params():
    algo = (PPOConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=1, rollout_fragment_length=16)
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=16, minibatch_size=16, num_epochs=1)).build()
    update = algo.learner.update

    def poisoning_update(state, batch, rng, **kw):  # finite losses, then one param leaf turns inf
        state, metrics = update(state, batch, rng, **kw)
        params = jax.tree_util.tree_map(lambda x: x, state.params)
        first_dense = sorted(params["pi"])[0]
        params["pi"][first_dense]["kernel"] = params["pi"][first_dense]["kernel"].at[0, 0].set(jnp.inf)
        return state._replace(params=params), metrics

    algo.learner.update = poisoning_update
    before = algo.get_params()
    with pytest.raises(NonFiniteError, match=r"training iteration 1: non-finite params\['pi'\]\['\w+'\]\['kernel'\]: "
                                             r"1 of \d+ values non-finite, first inf at index \(0, 0\)"):
        algo.train()
    assert same(algo.get_params(), before) and finite(algo.get_params())


def test_ppo_host_with_nan_gamma_stops_at_iteration_1_naming_a_loss():
    algo = (PPOConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=1, rollout_fragment_length=16)
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=16, minibatch_size=16, num_epochs=1)).build()
    object.__setattr__(algo.config, "gamma", float("nan"))  # past the settings checks: read when the update is traced
    with pytest.raises(NonFiniteError, match=r"training iteration 1: non-finite policy_loss: value nan"):
        algo.train()
    assert finite(algo.get_params())


def test_multi_agent_ppo_names_the_agent_whose_reward_is_nan():
    class NaNRewardCartPole(MultiAgentCartPole):
        def step(self, action_dict):
            obs, rew, term, trunc, info = super().step(action_dict)
            return obs, {a: (np.nan if a == 1 else r) for a, r in rew.items()}, term, trunc, info

    algo = (PPOConfig().environment(NaNRewardCartPole, env_config={"num_agents": 2})
            .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=32, minibatch_size=16, num_epochs=1)).build()
    with pytest.raises(NonFiniteError, match=r"training iteration 1: non-finite env reward: agent index 1 at sampling step 0"):
        algo.train()


def test_dqn_host_stops_on_a_nan_reward_and_keeps_its_learner_state():
    algo = (DQNConfig().environment("nonfinite_test_env", env_config=poisoned_env("dqn", after=200))
            .env_runners(num_envs_per_env_runner=1).rl_module(model_config=TINY)
            .training(train_batch_size=8, num_steps_sampled_before_learning_starts=16)).build()
    before = algo.get_params()
    with pytest.raises(NonFiniteError, match=r"training iteration 1: non-finite env reward: env index 0 at sampling step 199"):
        algo.train()
    assert same(algo.get_params(), before) and finite(algo._state()["learner"])


def test_dqn_host_stops_stepping_the_env_right_after_a_learn_step_goes_nonfinite():
    algo = (DQNConfig().environment("nonfinite_test_env", env_config=poisoned_env("dqn_gamma", after=10**9))
            .env_runners(num_envs_per_env_runner=1).rl_module(model_config=TINY)
            .training(train_batch_size=8, num_steps_sampled_before_learning_starts=16)).build()
    object.__setattr__(algo.config, "gamma", float("nan"))  # past the settings checks: read when the update is traced
    with pytest.raises(NonFiniteError, match=r"training iteration 1: non-finite qf_loss: first at sampling step 15"):
        algo.train()
    assert ENVS["dqn_gamma"][-1].steps == 16  # not the ~1000 steps of the iteration, acting on NaN Q values


def test_sac_host_never_steps_the_env_with_actions_from_nan_params():
    algo = (SACConfig().environment("nonfinite_test_env", env_config=poisoned_env("sac", env_id="Pendulum-v1", after=10**9))
            .env_runners(num_envs_per_env_runner=1).rl_module(model_config=TINY)
            .training(train_batch_size=8, num_steps_sampled_before_learning_starts=16)).build()
    algo._set_params(jax.tree_util.tree_map(lambda x: jnp.full_like(x, jnp.nan), algo._params()))
    with pytest.raises(NonFiniteError, match=r"training iteration 1: non-finite action distribution inputs: env index 0 at "
                                             r"sampling step 0"):  # the same host runner as PPO: checked before sampling
        algo.train()
    assert ENVS["sac"][-1].steps == 0


def test_bc_stops_when_its_data_turns_inf_and_keeps_the_last_finite_params(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", obs=rng.normal(size=(64, 4)).astype(np.float32), actions=rng.integers(0, 2, 64))
    algo = (BCConfig().offline_data(input_=tmp_path / "data.npz").rl_module(model_config=TINY)
            .training(train_batch_size_per_learner=16, minibatch_size=16, num_epochs=1)).build()
    algo.train(), algo.train()
    before = algo.get_params()
    algo.data[Columns.OBS][:] = np.inf
    with pytest.raises(NonFiniteError, match=r"training iteration 3: non-finite \w*loss"):
        algo.train()
    assert same(algo.get_params(), before) and algo.iteration == 2


# ----------------------------------------------------------------- all-in-jit loops
@pytest.mark.slow
def test_ppo_all_in_jit_algorithm_stops_and_keeps_its_state(nan_gymnax):
    nan_gymnax["after"] = 20  # 8 steps per iteration: the 20th env step is in iteration 3
    algo = (PPOConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=2, rollout_fragment_length=8)
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=16, minibatch_size=16, num_epochs=1)).build()
    algo.train(), algo.train()
    before = algo.get_params()
    with pytest.raises(NonFiniteError, match=r"training iteration 3: non-finite env reward"):
        algo.train()
    assert same(algo.get_params(), before) and algo.iteration == 2


@pytest.mark.parametrize("config", [
    PPOConfig().env_runners(num_envs_per_env_runner=2, rollout_fragment_length=8)
    .training(train_batch_size_per_learner=16, minibatch_size=16, num_epochs=1),
    DQNConfig().env_runners(num_envs_per_env_runner=2, rollout_fragment_length=8)
    .training(train_batch_size=8, num_steps_sampled_before_learning_starts=0, replay_buffer_config={"capacity": 64}),
], ids=["ppo", "dqn"])
def test_build_train_fn_reports_the_first_nonfinite_iteration(nan_gymnax, config):
    nan_gymnax["after"] = 20  # 8 steps per iteration: the 20th env step is in iteration index 2
    train = config.environment("gymnax:CartPole-v1").rl_module(model_config=TINY).build_train_fn(num_iterations=5)
    _, metrics = jax.jit(train)(jax.random.key(0))
    np.testing.assert_array_equal(metrics["first_nonfinite_iteration"], [-1, -1, 2, 2, 2])
    np.testing.assert_array_equal(metrics["nonfinite_code"][:2], [-1, -1])
    assert train.nonfinite_names[int(metrics["first_nonfinite_code"][-1])] == "env reward"


@pytest.mark.slow
def test_sac_all_in_jit_algorithm_names_the_inner_step(nan_gymnax):
    nan_gymnax["after"] = 30
    algo = (SACConfig().environment("gymnax:Pendulum-v1").env_runners(num_envs_per_env_runner=1, rollout_fragment_length=100)
            .rl_module(model_config=TINY).training(train_batch_size=8, num_steps_sampled_before_learning_starts=0)).build()
    before = algo.get_params()
    with pytest.raises(NonFiniteError, match=r"training iteration 1: non-finite env reward: .*jitted step 1 of 10"):
        algo.train()
    assert same(algo.get_params(), before)


def _fixed_act(dist_inputs, actions):
    """An `act` for GymEnvRunner.sample returning the same dist inputs and actions for every env."""
    def act(params, obs, rng, t):
        n = len(obs)
        return {Columns.OBS: obs, Columns.ACTION_LOGP: np.zeros(n, np.float32),
                Columns.ACTIONS: np.stack([np.asarray(actions)] * n),
                Columns.ACTION_DIST_INPUTS: np.tile(np.asarray(dist_inputs, np.float32), (n, 1))}

    return act


def test_host_runner_accepts_masked_logits_and_stops_on_nan_or_plus_inf_and_nonfinite_box_actions():
    from jaxrl_modules.algorithms.env_runner import GymEnvRunner

    runner = GymEnvRunner(PPOConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=2))
    runner.sample(_fixed_act([0.0, -np.inf], 0), None, jax.random.key(0), 3)  # an action mask: action 1 impossible
    for bad in ([0.0, np.nan], [np.inf, 0.0]):
        with pytest.raises(NonFiniteError, match="non-finite action distribution inputs: env index 0 at sampling step 0"):
            runner.sample(_fixed_act(bad, 0), None, jax.random.key(0), 3)
    box = GymEnvRunner(PPOConfig().environment("Pendulum-v1").environment(normalize_actions=False))
    with pytest.raises(NonFiniteError, match="non-finite actions: env index 0 at sampling step 0"):
        box.sample(_fixed_act([-np.inf, 0.0], np.array([-np.inf], np.float32)), None, jax.random.key(0), 3)
