"""MultiSeedAlgorithm: N seeds of a gymnax algorithm trained in one jitted, vmapped step, each seed
matching a separate single-seed algorithm; checkpoints per seed; NaN stops naming the seed."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules.algorithms.bc import BCConfig
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.multi_seed import MultiSeedAlgorithm
from jaxrl_modules.algorithms.nonfinite import NonFiniteError
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.algorithms import jit_loop
from jaxrl_modules.envs.registry import make_gymnax

TINY = {"fcnet_hiddens": [8]}
SEED = 3
# vmap turns the module's matmuls and the loss reductions into batched ones, whose CPU kernels may sum
# in another order: params and losses agree with separate runs to float32 rounding (seen: ~1e-10).
RTOL, ATOL = 1e-5, 1e-6


pytestmark = pytest.mark.usefixtures("fast_compiles")  # conftest: tiny runs compile faster


def ppo_config(seed=SEED):
    return (PPOConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=2, rollout_fragment_length=8)
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=16, minibatch_size=8, num_epochs=2)
            .debugging(seed=seed))


def raw(tree):
    """Leaves as numpy, typed PRNG keys as their key data."""
    def one(x):
        return np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
    return [one(x) for x in jax.tree_util.tree_leaves(tree)]


def same(a, b):
    ra, rb = raw(a), raw(b)
    return len(ra) == len(rb) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(ra, rb))


def close(a, b):
    for x, y in zip(raw(a), raw(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL)


def same_returns(a, b):
    return a == b or (np.isnan(a) and np.isnan(b))


def check_like_single(multi_result, single_result):
    """A per-seed result equals a single algorithm's: counts and returns exactly, losses to float tolerance."""
    assert set(multi_result) == set(single_result)
    m, s = multi_result, single_result
    assert m["training_iteration"] == s["training_iteration"]
    assert m["num_env_steps_sampled_lifetime"] == s["num_env_steps_sampled_lifetime"]
    assert m["env_runners"]["num_episodes"] == s["env_runners"]["num_episodes"]
    assert same_returns(m["env_runners"]["episode_return_mean"], s["env_runners"]["episode_return_mean"])
    ml, sl = m["learners"]["default_policy"], s["learners"]["default_policy"]
    assert set(ml) == set(sl)
    for k in sl:
        np.testing.assert_allclose(ml[k], sl[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.fixture(scope="module")
def ppo_runs(tmp_path_factory):
    """A 2-seed PPO trained 2 iterations (and saved then), and the two separate single-seed runs."""
    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    multi = MultiSeedAlgorithm(ppo_config(), 2)
    init = [multi.algorithm_for_seed(i)._state() for i in range(2)]
    results = [multi.train() for _ in range(2)]
    compiles = multi._step._cache_size()
    path = multi.save_to_path(tmp_path_factory.mktemp("multi") / "ck")
    singles, single_results, single_init = [], [], []
    for i in range(2):
        algo = ppo_config(SEED + i).build()
        single_init.append(algo._state())
        single_results.append([algo.train() for _ in range(2)])
        singles.append(algo)
    jax.config.update("jax_disable_most_optimizations", before)
    return {"multi": multi, "init": init, "results": results, "compiles": compiles, "path": path,
            "singles": singles, "single_init": single_init, "single_results": single_results}


@pytest.fixture
def saved(ppo_runs):
    """The 2-seed PPO and its checkpoint (of iteration 2)."""
    return ppo_runs["multi"], ppo_runs["path"]


# ----------------------------------------------------------------- equality with single-seed runs
def test_each_seed_starts_exactly_where_a_single_seed_algorithm_starts(ppo_runs):
    assert ppo_runs["multi"].seeds == [SEED, SEED + 1]
    for i in range(2):
        assert same(ppo_runs["init"][i], ppo_runs["single_init"][i]), f"seed index {i}"


def test_each_seed_trains_as_a_separate_single_seed_algorithm(ppo_runs):
    results, single_results = ppo_runs["results"], ppo_runs["single_results"]
    for i in range(2):
        close(ppo_runs["multi"].get_params(i), ppo_runs["singles"][i].get_params())
        for it in range(2):
            check_like_single(results[it]["seeds"][i], single_results[i][it])


def test_result_aggregates_over_seeds(ppo_runs):
    last = ppo_runs["results"][-1]
    seeds = last["seeds"]
    assert last["training_iteration"] == 2 and len(seeds) == 2
    assert last["num_env_steps_sampled_lifetime"] == sum(r["num_env_steps_sampled_lifetime"] for r in seeds) == 2 * 2 * 16
    assert last["env_runners"]["num_episodes"] == sum(r["env_runners"]["num_episodes"] for r in seeds)
    returns = np.array([r["env_runners"]["episode_return_mean"] for r in seeds])
    if np.isnan(returns).all():
        assert np.isnan(last["env_runners"]["episode_return_mean"])
    else:
        assert last["env_runners"]["episode_return_mean"] == pytest.approx(np.nanmean(returns))
    for k, value in last["learners"]["default_policy"].items():
        assert value == pytest.approx(np.mean([r["learners"]["default_policy"][k] for r in seeds]))
    assert last["time_this_iter_s"] > 0


def test_state_is_stacked_and_the_step_compiles_once(ppo_runs):
    multi = ppo_runs["multi"]
    stacked, one = multi.get_params(), multi.get_params(1)
    for s, o in zip(jax.tree_util.tree_leaves(stacked), jax.tree_util.tree_leaves(one), strict=True):
        assert s.shape == (2,) + o.shape and np.array_equal(s[1], o)
    assert all(x.shape[0] == 2 for x in jax.tree_util.tree_leaves(multi.state))
    assert ppo_runs["compiles"] == 1  # two train() calls, one trace
    assert multi.get_module() is multi.module is multi._algo.module


def test_algorithm_for_seed_is_an_independent_single_algorithm(ppo_runs):
    multi = ppo_runs["multi"]
    before, base = multi.get_params(), multi._algo._state()
    single = multi.algorithm_for_seed(1)
    assert single.iteration == multi.iteration and single.config.seed == SEED + 1
    assert same(single.get_params(), multi.get_params(1))
    single.train()
    assert single.iteration == multi.iteration + 1
    assert same(multi.get_params(), before) and multi._algo._state() is base  # neither is changed


def test_evaluate_runs_each_seed_through_the_single_evaluate(ppo_runs):
    multi = ppo_runs["multi"]
    base = multi._algo._state()
    result = multi.evaluate(2)
    per_seed = [r["env_runners"]["episode_return_mean"] for r in result["seeds"]]
    assert len(per_seed) == 2 and all(np.isfinite(per_seed))
    assert result["env_runners"]["episode_return_mean"] == pytest.approx(np.mean(per_seed))
    assert result["env_runners"]["num_episodes"] == len(result["env_runners"]["episode_returns"]) == 4
    assert multi._algo._state() is base


@pytest.mark.slow
def test_dqn_seeds_match_separate_single_seed_runs():
    config = (DQNConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=4, rollout_fragment_length=50)
              .rl_module(model_config=TINY)
              .training(train_batch_size=8, num_steps_sampled_before_learning_starts=0, replay_buffer_config={"capacity": 256})
              .debugging(seed=1))
    multi = MultiSeedAlgorithm(config, 2)
    result = multi.train()
    single = config.copy().debugging(seed=2).build()
    check_like_single(result["seeds"][1], single.train())
    close(multi.get_params(1), single.get_params())
    assert result["num_env_steps_sampled_lifetime"] == 2 * 1000


# ----------------------------------------------------------------- checkpoints
def test_write_and_restore_continue_bit_identically(tmp_path, ppo_runs):
    multi, path = ppo_runs["multi"], ppo_runs["path"]
    (tmp_path / "ck").mkdir()
    multi.write_checkpoint(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "multi_seed.json").read_text())
    assert (meta["num_seeds"], meta["seeds"], meta["iteration"]) == (2, [SEED, SEED + 1], multi.iteration)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["multi_seed.json", "seed_0", "seed_1"]
    assert multi.save_to_path(tmp_path / "atomic") == multi.save_to_path(tmp_path / "atomic")  # replaces its own kind
    expected = multi.train()

    for source in (tmp_path / "ck", tmp_path / "atomic"):
        trained = multi.state
        multi.restore_from_path(source)  # back to the saved iteration, then the same step again
        assert multi.iteration == meta["iteration"] and not same(multi.state, trained)
        got = multi.train()
        assert same(multi.state, trained)
        for i in range(2):  # the same numbers, the carried episode_return_mean included
            g, e = ({k: v for k, v in r["seeds"][i].items() if k != "time_this_iter_s"} for r in (got, expected))
            assert json.dumps(g, sort_keys=True) == json.dumps(e, sort_keys=True)

    single = ppo_runs["singles"][1]  # each seed folder is a normal checkpoint of a single-seed algorithm
    kept = single._state(), single.iteration
    single.restore_from_path(tmp_path / "ck" / "seed_1")
    multi.restore_from_path(tmp_path / "ck")
    assert single.iteration == meta["iteration"] and same(single._state(), multi.algorithm_for_seed(1)._state())
    single._set_state(kept[0])
    single.iteration = kept[1]

    with pytest.raises(ValueError, match="existing empty directory"):
        multi.write_checkpoint(tmp_path / "ck")
    with pytest.raises(ValueError, match="Refusing to save"):
        single.save_to_path(path)  # an algorithm checkpoint never replaces a multi-seed one


@pytest.mark.parametrize("damage, message", [
    (lambda p: __import__("shutil").rmtree(p / "seed_1"), r"lacks the seed folders \['seed_1'\]"),
    (lambda p: (p / "multi_seed.json").unlink(), r"not a multi-seed checkpoint: expected multi_seed.json"),
    (lambda p: (p / "multi_seed.json").write_text("{"), "not valid JSON"),
    (lambda p: _edit(p, num_seeds=3), r"holds 3 seeds \(num_seeds\); this algorithm has num_seeds=2"),
    (lambda p: _edit(p, seeds=[0, 1]), r"saved with seeds \[0, 1\]; this algorithm has seeds \[3, 4\]"),
    (lambda p: _edit(p, iteration="1"), r"key 'iteration' must be an int >= 0; got '1'"),
    (lambda p: _edit(p, iteration=7), r"seed_0/ is at iteration 2; multi_seed.json says 7"),
], ids=["missing-seed", "no-json", "bad-json", "num-seeds", "seeds", "iteration-type", "iteration"])
def test_bad_checkpoint_folders_are_refused_naming_the_path(tmp_path, damage, message, saved):
    multi, path = saved
    target = tmp_path / "copy"
    __import__("shutil").copytree(path, target)
    damage(target)
    before = multi.get_params()
    with pytest.raises(ValueError, match=message) as err:
        multi.restore_from_path(target)
    assert str(target) in str(err.value) and same(multi.get_params(), before)


def test_restore_from_nothing_names_the_path(tmp_path, saved):
    with pytest.raises(ValueError, match=r"No multi-seed checkpoint at .*nowhere.*found nothing"):
        saved[0].restore_from_path(tmp_path / "nowhere")


def _edit(path, **changes):
    meta = json.loads((path / "multi_seed.json").read_text())
    meta.update(changes)
    (path / "multi_seed.json").write_text(json.dumps(meta))


# ----------------------------------------------------------------- non-finite values
class NaNRewardFrom:
    """A gymnax env whose reward is NaN from its `after`-th step on (per env copy), as in test_nonfinite."""

    def __init__(self, env, after):
        self.env, self.after = env, after

    def reset(self, key, params=None):
        obs, state = self.env.reset(key, params)
        return obs, (state, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params=None):
        inner, n = state
        obs, inner, reward, term, trunc, info = self.env.step(key, inner, action, params)
        return obs, (inner, n + 1), jnp.where(n + 1 >= self.after, jnp.nan, reward), term, trunc, info

    def observation_space(self, params):
        return self.env.observation_space(params)

    def action_space(self, params):
        return self.env.action_space(params)


def test_a_nan_in_one_seed_stops_naming_that_seed_and_keeps_every_state(saved):
    multi = saved[0]
    params = jax.tree_util.tree_map(lambda x: x.at[1].set(jnp.nan), multi.state.learner.params)
    multi.state = multi.state._replace(learner=multi.state.learner._replace(params=params))
    before, iteration = multi.state, multi.iteration
    with pytest.raises(NonFiniteError, match=rf"training iteration {iteration + 1}: non-finite \S+: "
                                             rf"seed {SEED + 1} \(seed index 1 of 2\): ") as err:
        multi.train()
    assert err.value.iteration == iteration + 1 and "seed indices" not in str(err.value)
    assert multi.state is before and multi.iteration == iteration
    multi.restore_from_path(saved[1])  # leaves the shared fixture finite again
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(multi.get_params()))


def test_a_nan_env_reward_in_every_seed_names_the_first_and_lists_all(monkeypatch):
    def make(env, env_config):
        env, params = make_gymnax(env, env_config)
        return NaNRewardFrom(env, 12), params  # 8 steps per env copy and iteration: iteration 2

    monkeypatch.setattr(jit_loop, "make_gymnax", make)
    multi = MultiSeedAlgorithm(ppo_config(), 2)
    multi.train()
    before = multi.get_params()
    with pytest.raises(NonFiniteError, match=r"training iteration 2: non-finite env reward: seed 3 \(seed index 0 of 2; "
                                             r"seed indices \[0, 1\] met non-finite values\)"):
        multi.train()
    assert same(multi.get_params(), before) and multi.iteration == 1


# ----------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("num_seeds, exc, message", [
    (True, TypeError, r"num_seeds \(--num-seeds\) must be an int >= 1; got True \(bool\)"),
    (2.0, TypeError, r"must be an int >= 1; got 2.0 \(float\)"),
    ("2", TypeError, r"must be an int >= 1; got '2' \(str\)"),
    (0, ValueError, r"must be an int >= 1; got 0 \(int\)"),
])
def test_num_seeds_must_be_a_positive_int(num_seeds, exc, message):
    with pytest.raises(exc, match=message):
        MultiSeedAlgorithm(ppo_config(), num_seeds)


def test_needs_a_gymnax_env_and_an_all_in_jit_algorithm():
    with pytest.raises(ValueError, match=r"num_seeds \(--num-seeds\) needs a gymnax env .* or a JaxMARL env "
                                         r".*got env 'CartPole-v1'"):
        MultiSeedAlgorithm(ppo_config().environment("CartPole-v1"), 2)
    with pytest.raises(ValueError, match=r"needs an algorithm with an all-in-jit mode \(PPO, DQN, SAC or one whose "
                                         r"driver make_driver builds\); BC has none"):
        MultiSeedAlgorithm(BCConfig().environment("gymnax:CartPole-v1"), 2)
    with pytest.raises(TypeError, match=r"config must be an AlgorithmConfig .*got \{'env'"):
        MultiSeedAlgorithm({"env": "gymnax:CartPole-v1"}, 2)


@pytest.mark.parametrize("index, exc", [(2, ValueError), (-1, ValueError), ("0", TypeError), (True, TypeError)])
def test_seed_indices_are_checked(saved, index, exc):
    multi = saved[0]
    with pytest.raises(exc, match=r"must be a seed index, an int in \[0, 1\] \(seeds \[3, 4\]\); got"):
        multi.get_params(index)
    with pytest.raises(exc, match=r"algorithm_for_seed's index must be a seed index"):
        multi.algorithm_for_seed(index)
