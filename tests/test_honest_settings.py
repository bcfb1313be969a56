"""Honest settings (issue 11, point 7): every setting a config accepts has an effect and a test,
or is rejected with a clear error.

Part 1: `multi_agent(policies_to_train=[...])` trains only the listed modules; the others act but
their params (and optimizer state, KL coefficient) stay exactly as they were.
Part 2: `grad_clip_by` "value", "norm" and "global_norm" each change the update as expected.
Part 3: the table of every accepted setting -> the test showing its effect (or its rejection),
and a test that fails when a config gains a setting the table does not list.
"""

import functools
import inspect
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import Columns, MultiRLModuleSpec, RLModuleSpec
from jaxrl_modules.algorithms.bc import BCConfig
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule, PPOConfig, PPOLearner
from jaxrl_modules.algorithms.ppo.stacked_learner import StackedPPOLearner
from jaxrl_modules.algorithms.sac import SACConfig
from jaxrl_modules.envs import MultiAgentCartPole

from conftest import CARTPOLE_ACT, CARTPOLE_OBS, raises_naming
from learner_batches import fixed_batch
from test_recurrent_and_image import KeepPositions

pytestmark = pytest.mark.usefixtures("fast_compiles")

VE, TE = ValueError, TypeError
TINY = {"fcnet_hiddens": [4]}
SMALL_PPO = dict(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=2, lr=1e-2)


def leaves_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def two_agent_config(**multi_agent):
    return (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
            .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}",
                         **multi_agent)
            .rl_module(model_config=TINY).training(**SMALL_PPO))


# ----------------------------------------------------------------- 1. policies_to_train
def test_policies_to_train_freezes_the_other_policy_on_the_stacked_path():
    algo = two_agent_config(policies_to_train=["p0"]).build()
    assert isinstance(algo.learner, StackedPPOLearner)
    before, state_before = algo.get_params(), algo.learner_state
    result = algo.train()
    after = algo.get_params()
    assert leaves_equal(before["p1"], after["p1"])
    assert not leaves_equal(before["p0"], after["p0"])
    # p1's slice of the stacked optimizer state and KL coefficient are unchanged too
    i = algo.learner.module_ids.index("p1")
    slice_i = lambda tree: jax.tree_util.tree_map(lambda x: x[i], tree)  # noqa: E731
    assert leaves_equal(slice_i(state_before.opt_state), slice_i(algo.learner_state.opt_state))
    assert leaves_equal(slice_i(state_before.kl_coeff), slice_i(algo.learner_state.kl_coeff))
    # metrics for the trained module only; the frozen one still acts (its agent's returns are reported)
    assert set(result["learners"]) == {"p0"}
    assert set(result["env_runners"]["module_episode_returns_mean"]) == {"p0", "p1"}
    assert algo.runner.num_env_steps > 0


@pytest.mark.slow
def test_the_trained_policy_gets_the_update_it_gets_when_every_policy_trains():
    subset, everyone = two_agent_config(policies_to_train=["p0"]).build(), two_agent_config().build()
    subset.train()
    everyone.train()
    # same seed, same first rollout: p0's update is the same (only the batching of the vmap differs)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
                           subset.get_params()["p0"], everyone.get_params()["p0"])


def test_policies_to_train_freezes_the_other_policy_on_the_dict_path():
    spec = MultiRLModuleSpec(rl_module_specs={"p0": RLModuleSpec(model_config={"fcnet_hiddens": [4]}),
                                              "p1": RLModuleSpec(model_config={"fcnet_hiddens": [8]})})
    algo = two_agent_config(policies_to_train=("p1",)).rl_module(rl_module_spec=spec).build()
    assert type(algo.learner) is PPOLearner  # different specs: one optimizer over a params dict
    # the optimizer covers only the trained module's params
    mu = algo.learner_state.opt_state[0][0].mu
    assert set(mu) == {"p1"}
    before, kl_before = algo.get_params(), dict(algo.learner_state.kl_coeff)
    for _ in range(2):
        result = algo.train()
    after = algo.get_params()
    assert leaves_equal(before["p0"], after["p0"]) and not leaves_equal(before["p1"], after["p1"])
    assert float(algo.learner_state.kl_coeff["p0"]) == float(kl_before["p0"])
    assert set(result["learners"]) == {"p1"}


@pytest.mark.slow
def test_a_shared_encoder_trains_only_when_listed():
    from test_guide_examples import SHARED_ENCODER_ID, SharedEncoder, VPGMultiRLModuleWithSharedEncoder
    from test_multi_agent import PPOHeadAfterSharedEncoder

    head = dict(model_config={"embedding_dim": 4, "hidden_dim": 4})
    spec = MultiRLModuleSpec(
        multi_rl_module_class=VPGMultiRLModuleWithSharedEncoder,
        rl_module_specs={SHARED_ENCODER_ID: RLModuleSpec(SharedEncoder, model_config={"embedding_dim": 4}),
                         "p0": RLModuleSpec(PPOHeadAfterSharedEncoder, **head),
                         "p1": RLModuleSpec(PPOHeadAfterSharedEncoder, **head)})
    for listed, frozen in [(["p0"], [SHARED_ENCODER_ID, "p1"]), (["p0", SHARED_ENCODER_ID], ["p1"])]:
        algo = two_agent_config(policies_to_train=listed).rl_module(rl_module_spec=spec).build()
        before = algo.get_params()
        algo.train()
        after = algo.get_params()
        for mid in before:
            assert leaves_equal(before[mid], after[mid]) == (mid in frozen), (listed, mid)
    # Only the encoder listed: no policy's loss would reach anything, so training would change nothing.
    raises_naming(ValueError, two_agent_config(policies_to_train=[SHARED_ENCODER_ID]).rl_module(rl_module_spec=spec).build,
                  "policies_to_train", "at least one policy of ['p0', 'p1']", repr([SHARED_ENCODER_ID]))


POLICIES_TO_TRAIN_ERRORS = [
    pytest.param(lambda: two_agent_config(policies_to_train=["p0", "p9"]), VE,
                 ("policies_to_train", "known ModuleIDs ['p0', 'p1']", "unknown: ['p9']", "['p0', 'p9']"),
                 id="unknown id"),
    pytest.param(lambda: PPOConfig().environment("CartPole-v1").multi_agent(policies_to_train=["p0"]), VE,
                 ("policies_to_train", "['default_policy']", "['p0']"), id="single-agent unknown id"),
    pytest.param(lambda: two_agent_config(policies_to_train=lambda mid, batch: mid == "p0"), TE,
                 ("policies_to_train", "callable form (module_id, batch) -> bool is not supported",
                  "list the moduleids"), id="callable"),
    pytest.param(lambda: two_agent_config(policies_to_train=[]), VE, ("policies_to_train", "not empty", "[]"),
                 id="empty"),
    pytest.param(lambda: two_agent_config(policies_to_train="p0"), TE, ("policies_to_train", "collection", "'p0'"),
                 id="a bare str"),
]


@pytest.mark.parametrize("make,exc,fragments", POLICIES_TO_TRAIN_ERRORS)
def test_policies_to_train_errors(make, exc, fragments):
    raises_naming(exc, lambda: make().build(), *fragments)


def test_the_learners_check_policies_to_train_against_the_module_ids():
    """Learners built directly (not through a config's build) check the ids too."""
    spec = RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config=TINY)
    multi = MultiRLModuleSpec(rl_module_specs={"a": spec, "b": spec}).build()
    bad = PPOConfig().training(**SMALL_PPO)
    bad.policies_to_train = ["a", "c"]
    raises_naming(VE, lambda: PPOLearner(multi, bad), "policies_to_train", "['a', 'b']", "unknown: ['c']")
    raises_naming(VE, lambda: StackedPPOLearner(multi, bad, ["a", "b"]), "policies_to_train", "['a', 'b']",
                  "unknown: ['c']")
    bad.policies_to_train = lambda mid, batch: True
    raises_naming(TE, lambda: PPOLearner(multi, bad), "policies_to_train", "callable")


def test_single_agent_policies_to_train_default_policy_trains_on_both_paths():
    host = (PPOConfig().environment("CartPole-v1").rl_module(model_config=TINY)
            .training(**SMALL_PPO).multi_agent(policies_to_train={"default_policy"}).build())
    before = host.get_params()
    host.train()
    assert not leaves_equal(before, host.get_params())
    jitted = (PPOConfig().environment("gymnax:CartPole-v1").rl_module(model_config=TINY)
              .training(**SMALL_PPO).multi_agent(policies_to_train=["default_policy"]))
    jitted.build_train_fn(1)  # accepted by the all-in-jit path (single-agent only)
    jitted.policies_to_train = ["p0"]
    raises_naming(VE, lambda: jitted.build_train_fn(1), "policies_to_train", "['default_policy']", "['p0']")


# ----------------------------------------------------------------- 2. grad_clip_by
@pytest.mark.parametrize("clip_by", ["value", "norm", "global_norm"])
def test_grad_clip_by_clips_the_gradient_the_optimizer_steps_with(clip_by):
    """The optimizer a config builds clips by `grad_clip_by`, then steps Adam. With adam_eps=1 the first
    Adam update is `-lr * c / (|c| + 1)` of the clipped gradient c, so each mode's clipping shows."""
    import optax

    from jaxrl_modules.algorithms.optim import optimizer_for

    grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.0, 0.5])}
    clipped = {  # by hand: elementwise to [-1, 1]; each leaf to norm <= 1; all leaves together to norm <= 1
        "value": {"a": jnp.array([1.0, 1.0]), "b": jnp.array([0.0, 0.5])},
        "norm": {"a": jnp.array([0.6, 0.8]), "b": jnp.array([0.0, 0.5])},
        "global_norm": jax.tree_util.tree_map(lambda g: g / float(optax.global_norm(grads)), grads),
    }[clip_by]
    config = PPOConfig().training(lr=0.1, grad_clip=1.0, grad_clip_by=clip_by, adam_eps=1.0)
    opt = optimizer_for(config)
    updates, _ = opt.update(grads, opt.init(grads), grads)
    for key in grads:
        np.testing.assert_allclose(updates[key], -0.1 * clipped[key] / (jnp.abs(clipped[key]) + 1.0), rtol=1e-5)
    # and clipping changed the update (these gradients exceed the bound in every mode)
    plain = optimizer_for(PPOConfig().training(lr=0.1, adam_eps=1.0))
    unclipped, _ = plain.update(grads, plain.init(grads), grads)
    assert not np.allclose(updates["a"], unclipped["a"])


# ----------------------------------------------------------------- 3a. learner settings change the update
PENDULUM_OBS = gym.spaces.Box(-8.0, 8.0, (3,), np.float32)
PENDULUM_ACT = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
CONFIG_CLASSES = {"PPO": PPOConfig, "DQN": DQNConfig, "SAC": SACConfig, "BC": BCConfig}
LEARNER_BASE = {
    "PPO": dict(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=2, lr=1e-2),
    "DQN": dict(lr=1e-2),
    "SAC": dict(),
    "BC": dict(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=2, lr=1e-2),
}
B = 64


def _batch(algo):
    return fixed_batch(algo, B)


def learner_outcome(algo, **settings):
    """The whole learner state (params, optimizer state, targets, KL coefficients...) after 3 updates
    on one fixed batch, from fixed initial params, for the algorithm's config with `settings`."""
    config = CONFIG_CLASSES[algo]().rl_module(model_config=TINY).training(**{**LEARNER_BASE[algo], **settings})
    config.validate()
    spaces = (PENDULUM_OBS, PENDULUM_ACT) if algo == "SAC" else (CARTPOLE_OBS, CARTPOLE_ACT)
    module = config.module_spec_for(*spaces).build()
    learner = config.get_default_learner_class()(module, config)
    batch = _batch(algo)
    with jax.disable_jit():  # tiny nets, a few steps: running op by op is faster than compiling each variant
        state = learner.init(module.init_fn(jax.random.key(0)))
        for i in range(3):
            state, _ = learner.update(state, batch, jax.random.key(i + 1))
    return state


def outcomes_differ(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    if jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b) or len(la) != len(lb):
        return True
    return any(np.shape(x) != np.shape(y) or not np.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(la, lb))


# (algo, setting, changed value, settings both runs share)
LEARNER_EFFECTS = [
    *[("PPO", *case) for case in [
        ("lr", 1e-3, {}), ("grad_clip", 0.05, {}), ("grad_clip_by", "value", {"grad_clip": 0.05}),
        ("adam_eps", 0.1, {}), ("lr_schedule", "linear", {"total_iterations": 2}),
        ("total_iterations", 3, {"lr_schedule": "linear", "total_iterations": 2}), ("clip_param", 0.01, {}),
        ("vf_clip_param", 0.1, {}), ("vf_loss_coeff", 0.1, {}), ("entropy_coeff", 0.1, {}), ("use_kl_loss", False, {}),
        ("kl_coeff", 2.0, {}), ("kl_target", 10.0, {}), ("num_epochs", 1, {}), ("minibatch_size", 16, {}),
        ("shuffle_batch_per_epoch", False, {})]],
    *[("DQN", *case) for case in [
        ("lr", 1e-3, {}), ("gamma", 0.5, {}), ("grad_clip", 0.01, {}), ("grad_clip_by", "value", {"grad_clip": 0.01}),
        ("adam_eps", 0.1, {}), ("double_q", False, {}), ("dueling", False, {}),
        ("tau", 0.5, {"target_network_update_freq": 1}), ("target_network_update_freq", 1, {}),
        ("td_error_loss_fn", "mse", {})]],
    *[("SAC", *case) for case in [
        ("gamma", 0.5, {}), ("actor_lr", 1e-2, {}), ("critic_lr", 1e-2, {}), ("alpha_lr", 1e-1, {}),
        ("initial_alpha", 0.1, {}), ("target_entropy", -5.0, {}), ("tau", 0.5, {}), ("target_network_update_freq", 2, {}),
        ("twin_q", False, {}), ("grad_clip", 0.01, {}), ("grad_clip_by", "value", {"grad_clip": 0.01}),
        ("adam_eps", 0.1, {})]],
    *[("BC", *case) for case in [
        ("lr", 1e-3, {}), ("grad_clip", 0.01, {}), ("grad_clip_by", "value", {"grad_clip": 0.01}), ("adam_eps", 0.1, {}),
        ("minibatch_size", 16, {}), ("num_epochs", 1, {})]],
]


_FIRST_OF_EACH = {algo: next(c for c in LEARNER_EFFECTS if c[0] == algo) for algo in CONFIG_CLASSES}


@functools.lru_cache(maxsize=None)
def _baseline(algo, shared):
    return learner_outcome(algo, **dict(shared))


@pytest.mark.parametrize("algo,setting,value,shared", [
    c if c in _FIRST_OF_EACH.values() else pytest.param(*c, marks=pytest.mark.slow) for c in LEARNER_EFFECTS],
    ids=[f"{c[0]}-{c[1]}" for c in LEARNER_EFFECTS])
def test_learner_setting_changes_the_update(algo, setting, value, shared):
    """Each learner setting, changed alone, changes the learner state after a few updates (the first
    case per algorithm runs in the fast suite, the rest are marked slow: about 1 s each)."""
    baseline = _baseline(algo, tuple(sorted(shared.items())))
    assert outcomes_differ(baseline, learner_outcome(algo, **{**shared, setting: value}))


# ----------------------------------------------------------------- 3b. sampling and build settings change the run
def ppo_host(**settings):
    """PPO on CartPole-v1 (gymnasium, host loop), 32 env steps an iteration unless `settings` say otherwise."""
    env_runners = {k: settings.pop(k) for k in ("num_envs_per_env_runner", "rollout_fragment_length") if k in settings}
    seed = settings.pop("seed", 0)
    return (PPOConfig().environment("CartPole-v1").rl_module(model_config=TINY).env_runners(**env_runners)
            .debugging(seed=seed).training(**{"train_batch_size_per_learner": 32, "minibatch_size": 16, "num_epochs": 1,
                                              **settings}))


@functools.lru_cache(maxsize=None)
def _ppo_host_outcome(items):
    algo = ppo_host(**dict(items)).build()
    result = algo.train()
    return algo.get_params(), result["num_env_steps_sampled_lifetime"], len(algo.runner.episode_returns)


PPO_SAMPLING_EFFECTS = [  # (setting, value, shared, what differs)
    ("gamma", 0.5, {}, "params"), ("lambda_", 0.5, {}, "params"), ("seed", 1, {}, "params"),
    ("train_batch_size", 64, {"train_batch_size_per_learner": None, "train_batch_size": 32}, "steps"),
    ("train_batch_size_per_learner", 64, {}, "steps"), ("rollout_fragment_length", 16, {}, "steps"),
    ("num_envs_per_env_runner", 2, {}, "envs"),
]


@pytest.mark.parametrize("setting,value,shared,what", [
    c if c[0] == "gamma" else pytest.param(*c, marks=pytest.mark.slow) for c in PPO_SAMPLING_EFFECTS],
    ids=[c[0] for c in PPO_SAMPLING_EFFECTS])
def test_ppo_sampling_setting_changes_the_iteration(setting, value, shared, what):
    base = _ppo_host_outcome(tuple(sorted(shared.items())))
    changed = _ppo_host_outcome(tuple(sorted({**shared, setting: value}.items())))
    index = {"params": 0, "steps": 1, "envs": 2}[what]
    assert outcomes_differ(base[0], changed[0]) if what == "params" else base[index] != changed[index]


ALGO_ENVS = {"PPO": ("CartPole-v1", CARTPOLE_OBS), "DQN": ("CartPole-v1", CARTPOLE_OBS),
             "SAC": ("Pendulum-v1", PENDULUM_OBS), "BC": ("CartPole-v1", CARTPOLE_OBS)}


def _spaces(algo):
    return (PENDULUM_OBS, PENDULUM_ACT) if algo == "SAC" else (CARTPOLE_OBS, CARTPOLE_ACT)


@pytest.mark.parametrize("algo", list(CONFIG_CLASSES))
def test_model_config_and_rl_module_spec_reach_every_algorithms_module(algo):
    def kernel_shape(config):
        params = config.module_spec_for(*_spaces(algo)).build().init(jax.random.key(0))
        return {np.shape(x) for x in jax.tree_util.tree_leaves(params)}

    base = kernel_shape(CONFIG_CLASSES[algo]().rl_module(model_config=TINY))
    assert kernel_shape(CONFIG_CLASSES[algo]().rl_module(model_config={"fcnet_hiddens": [8]})) != base
    spec = RLModuleSpec(model_config={"fcnet_hiddens": [8]})
    assert kernel_shape(CONFIG_CLASSES[algo]().rl_module(model_config=TINY, rl_module_spec=spec)) != base


@pytest.fixture(scope="module")
def bc_data(tmp_path_factory):
    def write(name, seed):
        rng = np.random.default_rng(seed)
        obs = rng.normal(size=(200, 4)).astype(np.float32)
        path = tmp_path_factory.mktemp("bc") / f"{name}.npz"
        np.savez(path, obs=obs, actions=rng.integers(0, 2, 200), rewards=np.ones(200, np.float32),
                 terminateds=np.zeros(200, bool), truncateds=np.zeros(200, bool), next_obs=obs)
        return path

    return write("a", 0), write("b", 1)


def test_bc_input_and_batch_size_change_training(bc_data):
    def run(path, **training):
        algo = (BCConfig().offline_data(input_=path).rl_module(model_config=TINY)
                .training(**{"train_batch_size_per_learner": 64, "minibatch_size": 32, **training}).build())
        result = algo.train()
        return algo.get_params(), result["num_env_steps_trained_lifetime"]

    base, n = run(bc_data[0])
    assert n == 64 and run(bc_data[0], train_batch_size_per_learner=128)[1] == 128
    assert run(bc_data[0], train_batch_size_per_learner=None, train_batch_size=32)[1] == 32
    assert outcomes_differ(base, run(bc_data[1])[0])


def _algorithm(algo, bc_path, **debugging):
    config = CONFIG_CLASSES[algo]().rl_module(model_config=TINY).debugging(**debugging)
    if algo == "BC":
        return config.offline_data(input_=bc_path).training(train_batch_size_per_learner=64, minibatch_size=32).build()
    return config.environment(ALGO_ENVS[algo][0]).build()


@pytest.mark.parametrize("algo", list(CONFIG_CLASSES))
def test_seed_changes_the_initial_params(algo, bc_data):
    assert outcomes_differ(_algorithm(algo, bc_data[0], seed=0).get_params(),
                           _algorithm(algo, bc_data[0], seed=1).get_params())


@pytest.mark.parametrize("algo,env", [("PPO", "CartPole-v1"), ("PPO", "gymnax:CartPole-v1"), ("DQN", "CartPole-v1"),
                                      ("SAC", "Pendulum-v1")])
def test_env_to_module_connector_shapes_the_module_input(algo, env):
    algo = (CONFIG_CLASSES[algo]().environment(env).rl_module(model_config=TINY)
            .env_runners(env_to_module_connector=lambda e: KeepPositions()).build())
    assert algo.get_module().observation_space.shape == (2,)


def test_normalize_and_clip_actions_change_the_env_actions_of_every_algorithm():
    """One function maps module actions to env actions for every loop and evaluate() (DQN, acting in
    Discrete spaces only, refuses non-default values: see REFUSED)."""
    from jaxrl_modules.algorithms.action_transform import env_action_fn

    box = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    action = np.array([1.5], np.float32)
    for cls in (c for name, c in CONFIG_CLASSES.items() if name != "DQN"):
        normalized = env_action_fn(cls().environment(normalize_actions=True), box)(action)
        raw = env_action_fn(cls().environment(normalize_actions=False), box)(action)
        clipped = env_action_fn(cls().environment(normalize_actions=False, clip_actions=True), box)(np.array([3.0], np.float32))
        assert float(normalized[0]) == 2.0 and float(raw[0]) == 1.5 and float(clipped[0]) == 2.0


# Off-policy sampling settings: DQN's and SAC's loops are one (OffPolicyAlgorithm / JaxOffPolicy).
def dqn_gymnax(**settings):
    env_runners = {k: settings.pop(k) for k in ("num_envs_per_env_runner", "rollout_fragment_length") if k in settings}
    return (DQNConfig().environment("gymnax:CartPole-v1").rl_module(model_config=TINY).env_runners(**env_runners)
            .training(**{"train_batch_size": 8, "num_steps_sampled_before_learning_starts": 0,
                         "replay_buffer_config": {"capacity": 64}, **settings}))


def test_off_policy_buffer_settings_shape_the_state():
    from jaxrl_modules.algorithms.off_policy_jax import JaxOffPolicy

    def state(**settings):
        return JaxOffPolicy(dqn_gymnax(**settings)).init(jax.random.key(0)).learner  # a ReplayState

    base = state()
    assert {np.shape(x)[0] for x in jax.tree_util.tree_leaves(base.buffer) if np.ndim(x)} == {64}
    assert {np.shape(x)[0] for x in jax.tree_util.tree_leaves(state(replay_buffer_config={"capacity": 128}).buffer)
            if np.ndim(x)} == {128}
    assert outcomes_differ(base.nstep, state(n_step=3).nstep)  # a 3-step window


OFF_POLICY_SAMPLING_EFFECTS = [  # (setting, value, settings both runs share, what differs)
    ("num_steps_sampled_before_learning_starts", 10_000, {}, "params"),
    ("rollout_fragment_length", 3, {}, "steps"),
    ("num_envs_per_env_runner", 2, {}, "steps"),
    ("train_batch_size", 16, {}, "params"),
    ("train_batch_size_per_learner", 16, {}, "params"),
]


@pytest.mark.parametrize("setting,value,shared,what", [
    c if c[0] == "num_steps_sampled_before_learning_starts" else pytest.param(*c, marks=pytest.mark.slow)
    for c in OFF_POLICY_SAMPLING_EFFECTS], ids=[c[0] for c in OFF_POLICY_SAMPLING_EFFECTS])
def test_off_policy_sampling_setting_changes_training(setting, value, shared, what):
    """DQN all-in-jit, 4 iterations (the loop SAC shares; after 2, batches of 8 and 16 drawn from a buffer of
    2 transitions can hold them in the same proportion and give the same update)."""
    def run(**settings):
        params, metrics = jax.jit(dqn_gymnax(**settings).build_train_fn(4))(jax.random.key(0))
        return params, int(metrics["num_env_steps_sampled_lifetime"][-1])

    base, changed = run(**shared), run(**{**shared, setting: value})
    assert outcomes_differ(base[0], changed[0]) if what == "params" else base[1] != changed[1]


# ----------------------------------------------------------------- 3c. accepted but without effect: refused
REFUSED = [
    pytest.param(lambda p: BCConfig().offline_data(input_=p).training(gamma=0.9), ("gamma", "0.99", "no return", "0.9"),
                 id="BC-gamma"),
    pytest.param(lambda p: BCConfig().offline_data(input_=p).env_runners(rollout_fragment_length=10),
                 ("rollout_fragment_length", "'auto'", "samples no env steps", "10"), id="BC-rollout_fragment_length"),
    pytest.param(lambda p: BCConfig().offline_data(input_=p).env_runners(num_envs_per_env_runner=4),
                 ("num_envs_per_env_runner", "1", "samples no env steps", "4"), id="BC-num_envs_per_env_runner"),
    pytest.param(lambda p: BCConfig().offline_data(input_=p).env_runners(env_to_module_connector=lambda e: KeepPositions()),
                 ("env_to_module_connector", "None", "recorded observations"), id="BC-env_to_module_connector"),
    *[pytest.param(lambda p, a=a: _single(a, p).multi_agent(policies={"p0"}), ("policies", "None", "single-agent", "p0"),
                   id=f"{a}-policies") for a in ("DQN", "SAC", "BC")],
    *[pytest.param(lambda p, a=a: _single(a, p).multi_agent(policy_mapping_fn=lambda aid, ep, **kw: "p0"),
                   ("policy_mapping_fn", "None", "single-agent"), id=f"{a}-policy_mapping_fn") for a in ("DQN", "SAC", "BC")],
    *[pytest.param(lambda p, a=a: _single(a, p).rl_module(rl_module_spec=MultiRLModuleSpec(
        rl_module_specs={"default_policy": RLModuleSpec()})), ("rl_module_spec", "an RLModuleSpec", "single-agent",
                                                              "MultiRLModuleSpec"), id=f"{a}-multi rl_module_spec")
      for a in ("DQN", "SAC", "BC")],
    *[pytest.param(lambda p, a=a: _single(a, p).training(total_iterations=10),
                   ("total_iterations", "None", "lr_schedule", "10"), id=f"{a}-total_iterations") for a in ("DQN", "SAC", "BC")],
    *[pytest.param(lambda p, a=a: _single(a, p).env_runners(rollout_fragment_length=4),
                   ("rollout_fragment_length", "1 or 'auto'", "once per update", "4"), id=f"{a}-host rollout_fragment_length")
      for a in ("DQN", "SAC")],
    *[pytest.param(lambda p, a=a, e=e: CONFIG_CLASSES[a]().environment(e).env_runners(
        env_to_module_connector=lambda env: KeepPositions()), ("env_to_module_connector", "None", "all-in-jit gymnax"),
        id=f"{a}-gymnax env_to_module_connector") for a, e in (("DQN", "gymnax:CartPole-v1"), ("SAC", "gymnax:Pendulum-v1"))],
    *[pytest.param(lambda p, f=f: PPOConfig().environment("CartPole-v1").rl_module(model_config={f: True}),
                   (f, "False", "not fed", "True"), id=f"PPO-{f}")
      for f in ("lstm_use_prev_action", "lstm_use_prev_reward")],
    # model-config fields a default module does not read (also refused when the module is constructed:
    # test_default_modules_refuse_the_model_fields_they_do_not_read)
    *[pytest.param(lambda p, a=a, f=f, val=val: _single(a, p).rl_module(model_config={**TINY, f: val}),
                   (f"model_config['{f}']", repr(default), why, repr(val)), id=f"{a}-{f}")
      for a, f, val, default, why in [
          ("SAC", "free_log_std", True, False, "asserts free_log_std=false"),
          ("SAC", "log_std_clip_param", 1.0, 20.0, "clamps the log-std to [-5, 2]"),
          ("SAC", "vf_share_layers", False, True, "sac has no value function"),
          ("DQN", "free_log_std", True, False, "q-values"),
          ("DQN", "log_std_clip_param", 1.0, 20.0, "q-values"),
          ("DQN", "vf_share_layers", False, True, "always share its one encoder"),
          ("BC", "vf_share_layers", False, True, "bc's module has no value function")]],
    pytest.param(lambda p: BCConfig().offline_data(input_=p).env_runners(num_env_runners=2),
                 ("num_env_runners", "0", "samples no env steps", "2"), id="BC-num_env_runners"),
    pytest.param(lambda p: DQNConfig().environment("CartPole-v1", normalize_actions=False),
                 ("normalize_actions", "True", "discrete action spaces only", "False"), id="DQN-normalize_actions"),
    pytest.param(lambda p: DQNConfig().environment("CartPole-v1", clip_actions=True),
                 ("clip_actions", "False", "discrete action spaces only", "True"), id="DQN-clip_actions"),
    pytest.param(lambda p: two_agent_config().env_runners(num_envs_per_env_runner=2),
                 ("num_envs_per_env_runner", "1 for multi-agent PPO", "steps one multi-agent env", "2"),
                 id="PPO-multi-agent num_envs_per_env_runner"),
    pytest.param(lambda p: PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
                 .rl_module(model_config=TINY).env_runners(num_envs_per_env_runner=3),
                 ("num_envs_per_env_runner", "1 for multi-agent PPO", "3"),
                 id="PPO-multi-agent env without policies num_envs_per_env_runner"),
    pytest.param(lambda p: two_agent_config().env_runners(rollout_fragment_length=16),
                 ("rollout_fragment_length", "'auto' for multi-agent PPO", "16"), id="PPO-multi-agent rollout_fragment_length"),
    pytest.param(lambda p: two_agent_config().env_runners(env_to_module_connector=lambda e: KeepPositions()),
                 ("env_to_module_connector", "None for multi-agent PPO"), id="PPO-multi-agent env_to_module_connector"),
]


def _single(algo, bc_path):
    config = CONFIG_CLASSES[algo]()
    if algo == "BC":
        return config.offline_data(input_=bc_path)
    return config.environment(ALGO_ENVS[algo][0])


@pytest.mark.parametrize("make,fragments", REFUSED)
def test_settings_without_effect_are_refused(make, fragments, bc_data):
    raises_naming(VE, make(bc_data[0]).build, *fragments)


MODULE_REFUSALS = [  # (algorithm, model-config field its default module does not read, a non-default value)
    ("SAC", "free_log_std", True), ("SAC", "log_std_clip_param", 1.0), ("SAC", "vf_share_layers", False),
    ("DQN", "free_log_std", True), ("DQN", "log_std_clip_param", 1.0), ("DQN", "vf_share_layers", False),
    ("BC", "vf_share_layers", False),
]


@pytest.mark.parametrize("algo,field,value", MODULE_REFUSALS, ids=[f"{c[0]}-{c[1]}" for c in MODULE_REFUSALS])
def test_default_modules_refuse_the_model_fields_they_do_not_read(algo, field, value):
    """Built from a spec without an algorithm config (a dict or a DefaultModelConfig), the default module
    refuses a non-default value when it is constructed; the default value is accepted."""
    from jaxrl_modules import DefaultModelConfig

    cls = CONFIG_CLASSES[algo]().get_default_rl_module_spec().module_class
    for model_config in ({**TINY, field: value}, DefaultModelConfig(fcnet_hiddens=[4], **{field: value})):
        spec = RLModuleSpec(cls, *_spaces(algo), model_config=model_config)
        raises_naming(VE, spec.build, f"model_config['{field}']", "(the default)", cls.__name__, repr(value))
    default = DefaultModelConfig.field_default(field)
    module = RLModuleSpec(cls, *_spaces(algo), model_config={**TINY, field: default}).build()
    assert module.init(jax.random.key(0))


def test_sac_squashed_gaussian_clamps_the_log_std_to_rllibs_range():
    """Why SAC refuses log_std_clip_param: its log-std is clamped to [-5, 2] by the distribution (RLlib's
    MIN/MAX_LOG_NN_OUTPUT), whatever the head outputs, as in RLlib's SAC."""
    from jaxrl_modules.distributions import SquashedGaussian

    def logp(log_std):
        return float(SquashedGaussian.from_logits(jnp.array([[0.0, log_std]])).logp(jnp.full((1, 1), 0.3))[0])

    assert logp(-30.0) == logp(-5.0) and logp(30.0) == logp(2.0) and logp(1.0) != logp(2.0)


def test_default_model_config_refuses_lstm_use_prev_fields():
    """RLlib's `lstm_use_prev_action` / `lstm_use_prev_reward` (unread by its new stack, and by the default
    modules here) are refused by DefaultModelConfig itself: built directly, from a dict of a spec, or
    through an algorithm config (REFUSED)."""
    from jaxrl_modules import DefaultModelConfig

    for field in ("lstm_use_prev_action", "lstm_use_prev_reward"):
        raises_naming(VE, lambda: DefaultModelConfig(**{field: True}), field, "False (the default)", "not fed", "True")
        assert getattr(DefaultModelConfig(**{field: False}), field) is False
        model_config = {**TINY, "use_lstm": True, "lstm_cell_size": 4, field: True}
        for algo in ("DQN", "SAC", "BC"):  # every default module parses its model config when constructed
            cls = CONFIG_CLASSES[algo]().get_default_rl_module_spec().module_class
            raises_naming(VE, RLModuleSpec(cls, *_spaces(algo), model_config=model_config).build, field, "not fed")
        # PPO's too (spec build), not only when it builds its networks (init)
        raises_naming(VE, RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config=model_config).build,
                      field, "not fed", "True")


def test_multi_agent_host_loop_refuses_num_envs_per_env_runner():
    """The multi-agent host loop steps one env, so it refuses num_envs_per_env_runner != 1 when built; the
    multi-module learners themselves are loop-independent (JaxMARL envs in one jit step many envs)."""
    spec = RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config=TINY)
    multi = MultiRLModuleSpec(rl_module_specs={"a": spec, "b": spec}).build()
    config = PPOConfig().training(**SMALL_PPO).env_runners(num_envs_per_env_runner=2)
    PPOLearner(multi, config), StackedPPOLearner(multi, config, ["a", "b"])
    host = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2}).rl_module(model_config=TINY)
            .training(**SMALL_PPO).env_runners(num_envs_per_env_runner=2))
    raises_naming(VE, host.build, "num_envs_per_env_runner", "1 for multi-agent PPO", "2")


def test_api_stack_accepts_only_the_new_stack():
    config = PPOConfig().api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
    assert isinstance(config, PPOConfig)
    raises_naming(VE, lambda: PPOConfig().api_stack(enable_rl_module_and_learner=False),
                  "enable_rl_module_and_learner", "True", "new one", "False")
    raises_naming(VE, lambda: DQNConfig().api_stack(enable_rl_modul_and_learner=True),
                  "enable_rl_modul_and_learner", "did you mean 'enable_rl_module_and_learner'")
    raises_naming(TE, lambda: SACConfig().api_stack(enable_env_runner_and_connector_v2="yes"),
                  "enable_env_runner_and_connector_v2", "True", "'yes'")


# ----------------------------------------------------------------- 3d. DefaultModelConfig fields change the module
IMAGE_OBS = gym.spaces.Box(0.0, 1.0, (10, 10, 3), np.float32)
BOX_ACT = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
CONV = {"conv_filters": [[4, 3, 2]]}
HEAD = {"head_fcnet_hiddens": [4]}
LSTM = {"use_lstm": True, "lstm_cell_size": 4}
MODEL_EFFECTS = [  # (field, value, fields both modules share, observation space, action space)
    ("fcnet_hiddens", [8], {}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("fcnet_activation", "relu", {}, CARTPOLE_OBS, CARTPOLE_ACT),  # default "tanh"
    ("fcnet_kernel_initializer", "zeros", {}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("fcnet_kernel_initializer_kwargs", {"scale": 3.0}, {"fcnet_kernel_initializer": "orthogonal"}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("fcnet_bias_initializer", "ones", {}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("fcnet_bias_initializer_kwargs", {"value": 2.0},
     {"fcnet_bias_initializer": "constant", "fcnet_bias_initializer_kwargs": {"value": 1.0}}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("fcnet_use_layernorm", True, {}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("conv_filters", [[8, 3, 2]], CONV, IMAGE_OBS, CARTPOLE_ACT),
    ("conv_activation", "tanh", CONV, IMAGE_OBS, CARTPOLE_ACT),
    ("conv_kernel_initializer", "zeros", CONV, IMAGE_OBS, CARTPOLE_ACT),
    ("conv_kernel_initializer_kwargs", {"scale": 3.0}, {**CONV, "conv_kernel_initializer": "orthogonal"}, IMAGE_OBS,
     CARTPOLE_ACT),
    ("conv_bias_initializer", "ones", CONV, IMAGE_OBS, CARTPOLE_ACT),
    ("conv_bias_initializer_kwargs", {"value": 2.0},
     {**CONV, "conv_bias_initializer": "constant", "conv_bias_initializer_kwargs": {"value": 1.0}}, IMAGE_OBS, CARTPOLE_ACT),
    ("head_fcnet_hiddens", [4], {}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("head_fcnet_activation", "tanh", HEAD, CARTPOLE_OBS, CARTPOLE_ACT),
    ("head_fcnet_kernel_initializer", "zeros", {}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("head_fcnet_kernel_initializer_kwargs", {"scale": 3.0}, {"head_fcnet_kernel_initializer": "orthogonal"}, CARTPOLE_OBS,
     CARTPOLE_ACT),
    ("head_fcnet_bias_initializer", "ones", {}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("head_fcnet_bias_initializer_kwargs", {"value": 2.0},
     {"head_fcnet_bias_initializer": "constant", "head_fcnet_bias_initializer_kwargs": {"value": 1.0}}, CARTPOLE_OBS,
     CARTPOLE_ACT),
    ("head_fcnet_use_layernorm", True, HEAD, CARTPOLE_OBS, CARTPOLE_ACT),
    ("free_log_std", True, {}, CARTPOLE_OBS, BOX_ACT),
    ("log_std_clip_param", 1e-3, {}, CARTPOLE_OBS, BOX_ACT),
    ("vf_share_layers", True, {}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("use_lstm", True, {"lstm_cell_size": 4}, CARTPOLE_OBS, CARTPOLE_ACT),
    ("lstm_cell_size", 8, LSTM, CARTPOLE_OBS, CARTPOLE_ACT),
    ("lstm_kernel_initializer", "zeros", LSTM, CARTPOLE_OBS, CARTPOLE_ACT),
    ("lstm_kernel_initializer_kwargs", {"scale": 3.0}, {**LSTM, "lstm_kernel_initializer": "orthogonal"}, CARTPOLE_OBS,
     CARTPOLE_ACT),
    ("lstm_bias_initializer", "ones", LSTM, CARTPOLE_OBS, CARTPOLE_ACT),
    ("lstm_bias_initializer_kwargs", {"value": 2.0},
     {**LSTM, "lstm_bias_initializer": "constant", "lstm_bias_initializer_kwargs": {"value": 1.0}}, CARTPOLE_OBS,
     CARTPOLE_ACT),
]


def module_outcome(model_config, obs_space, act_space):
    """The PPO module's initial params and (feed-forward) action-distribution inputs on fixed observations."""
    module = DefaultPPORLModule(observation_space=obs_space, action_space=act_space,
                                model_config={"fcnet_hiddens": [4], "vf_share_layers": False, **model_config})
    with jax.disable_jit():
        params = module.init_fn(jax.random.key(0))
        if module.is_stateful():
            return params, None
        obs = np.random.default_rng(0).uniform(-1, 1, (3, *obs_space.shape)).astype(np.float32)
        return params, module.phase_fn("inference")(params, {Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]


@pytest.mark.parametrize("field,value,shared,obs_space,act_space", MODEL_EFFECTS, ids=[c[0] for c in MODEL_EFFECTS])
def test_model_config_field_changes_the_module(field, value, shared, obs_space, act_space):
    assert outcomes_differ(module_outcome(shared, obs_space, act_space),
                           module_outcome({**shared, field: value}, obs_space, act_space))


@pytest.mark.slow
def test_max_seq_len_changes_recurrent_training():
    def run(max_seq_len):
        model_config = {**TINY, **LSTM, "max_seq_len": max_seq_len}
        config = (PPOConfig().environment("gymnax:CartPole-v1").rl_module(model_config=model_config)
                  .env_runners(num_envs_per_env_runner=2, rollout_fragment_length=16)
                  .training(minibatch_size=8, num_epochs=1, train_batch_size_per_learner=32))
        return jax.jit(config.build_train_fn(1))(jax.random.key(0))[0]

    assert outcomes_differ(run(4), run(16))


# ----------------------------------------------------------------- 3e. the table: every accepted setting -> its evidence
T = "tests/test_honest_settings.py::"
LEARNER, PPO_SAMPLING, OFF_POLICY = "learner", "ppo_sampling", "off_policy_sampling"
REFUSE, MODEL = "refused", "model"
ONLY = "only:"  # accepts a single value (or None): refused otherwise (tests/test_bad_input_settings.py)
NOOP = "noop:"  # accepted, no effect, documented why: none left (test_no_setting_is_accepted_without_effect)
PENDING = "pending:"  # a test another engineer writes
ALL = "*"
SETTER_REJECTS = "tests/test_bad_input_settings.py::test_setter_rejects_bad_value"

# setting -> {algorithm or "*": evidence, or a tuple of evidences}. Evidence: a test "path::name"; LEARNER,
# PPO_SAMPLING, OFF_POLICY, MODEL (a case of this file's matrix for that setting); REFUSE (a REFUSED case
# "<algo>-<setting>..." of this file); ONLY/NOOP with the reason; PENDING with the test file.
SETTINGS = {
    "env": {ALL: "tests/test_ppo.py::test_connector_and_registered_env_creator",
            "DQN": "tests/test_dqn.py::test_dqn_all_in_jit_solves_cartpole",
            "SAC": "tests/test_sac.py::test_sac_host_loop_runs_on_gymnasium_pendulum",
            "BC": "tests/test_bc.py::test_bc_clones_a_trained_ppo_policy"},
    "env_config": {ALL: ("tests/test_cli_envs.py::test_frozen_lake_flatten_obs_with_env_config",
                         "tests/test_bad_input_settings.py::test_env_config_keys_the_env_does_not_take")},
    "normalize_actions": {ALL: (T + "test_normalize_and_clip_actions_change_the_env_actions_of_every_algorithm",
                                "tests/test_actions_in_space.py::test_box_actions_reach_the_env_inside_bounds_host_loop"),
                          "DQN": REFUSE},  # DQN acts in Discrete spaces only: non-default values are refused
    "clip_actions": {ALL: (T + "test_normalize_and_clip_actions_change_the_env_actions_of_every_algorithm",
                           "tests/test_actions_in_space.py::test_sac_host_loop_box_actions"),
                     "DQN": REFUSE},
    "num_envs_per_env_runner": {"PPO": (PPO_SAMPLING, REFUSE,  # != 1 refused for multi-agent PPO
                                        T + "test_multi_agent_host_loop_refuses_num_envs_per_env_runner",
                                        "tests/test_cli_envs.py::test_multi_agent_env_keeps_one_env_on_the_command_line"),
                                "DQN": OFF_POLICY, "SAC": OFF_POLICY, "BC": REFUSE},
    "rollout_fragment_length": {"PPO": (PPO_SAMPLING, REFUSE), "DQN": (OFF_POLICY, REFUSE), "SAC": (OFF_POLICY, REFUSE),
                                "BC": REFUSE},
    "env_to_module_connector": {ALL: (T + "test_env_to_module_connector_shapes_the_module_input", REFUSE),
                                "BC": REFUSE},
    "num_env_runners": {ALL: "tests/test_num_env_runners.py", "BC": REFUSE},
    "num_learners": {ALL: "tests/test_data_parallel.py::test_n_learners_update_equals_one_learner_update"},
    "model_config": {ALL: T + "test_model_config_and_rl_module_spec_reach_every_algorithms_module"},
    "rl_module_spec": {ALL: T + "test_model_config_and_rl_module_spec_reach_every_algorithms_module",
                       "DQN": REFUSE, "SAC": REFUSE, "BC": REFUSE},
    "policies": {"PPO": (T + "test_policies_to_train_freezes_the_other_policy_on_the_stacked_path",
                         "tests/test_multi_agent.py::test_two_policies_learn_through_the_stacked_update"),
                 "DQN": REFUSE, "SAC": REFUSE, "BC": REFUSE},
    "policy_mapping_fn": {"PPO": (T + "test_policies_to_train_freezes_the_other_policy_on_the_stacked_path",
                                  "tests/test_multi_agent.py::test_two_policies_learn_through_the_stacked_update"),
                          "DQN": REFUSE, "SAC": REFUSE, "BC": REFUSE},
    "policies_to_train": {"PPO": (T + "test_policies_to_train_freezes_the_other_policy_on_the_dict_path",
                                  T + "test_policies_to_train_errors"),
                          ALL: (ONLY + "None or ['default_policy'] (the one module trains); other ids are refused",
                                T + "test_policies_to_train_errors")},
    "seed": {ALL: T + "test_seed_changes_the_initial_params", "PPO": (PPO_SAMPLING, T + "test_seed_changes_the_initial_params")},
    "evaluation_duration": {ALL: "tests/test_no_hidden_state.py::test_evaluate_runs_exactly_the_requested_episodes"},
    "gamma": {"PPO": PPO_SAMPLING, "DQN": LEARNER, "SAC": LEARNER, "BC": REFUSE},
    "lr": {ALL: LEARNER, "SAC": ONLY + "None: SAC's rates are actor_lr, critic_lr, alpha_lr"},
    "train_batch_size": {"PPO": PPO_SAMPLING, "DQN": OFF_POLICY, "SAC": OFF_POLICY,
                         "BC": T + "test_bc_input_and_batch_size_change_training"},
    "train_batch_size_per_learner": {"PPO": PPO_SAMPLING, "DQN": OFF_POLICY, "SAC": OFF_POLICY,
                                     "BC": T + "test_bc_input_and_batch_size_change_training"},
    "grad_clip": {ALL: LEARNER},
    "grad_clip_by": {ALL: (LEARNER, T + "test_grad_clip_by_clips_the_gradient_the_optimizer_steps_with")},
    "adam_eps": {ALL: LEARNER},
    "lr_schedule": {"PPO": LEARNER, ALL: ONLY + "None: lr_schedule is PPO's"},
    "total_iterations": {"PPO": LEARNER, ALL: REFUSE},
    # PPO
    "lambda_": {"PPO": PPO_SAMPLING},
    "use_gae": {"PPO": ONLY + "True: this PPO always uses GAE"},
    "use_critic": {"PPO": ONLY + "True: this PPO always uses a critic"},
    **{k: {"PPO": LEARNER} for k in ("clip_param", "vf_clip_param", "vf_loss_coeff", "entropy_coeff", "use_kl_loss",
                                     "kl_coeff", "kl_target", "shuffle_batch_per_epoch")},
    "num_epochs": {ALL: LEARNER},
    "minibatch_size": {ALL: LEARNER},
    # off-policy (one loop for DQN and SAC)
    "replay_buffer_config": {ALL: (T + "test_off_policy_buffer_settings_shape_the_state",
                                   "tests/test_bad_input_settings.py::test_replay_buffer_config_is_checked")},
    "num_steps_sampled_before_learning_starts": {ALL: OFF_POLICY},
    "tau": {ALL: LEARNER},
    "target_network_update_freq": {ALL: LEARNER},
    "n_step": {"DQN": (T + "test_off_policy_buffer_settings_shape_the_state",
                       "tests/test_dqn.py::test_dqn_host_loop_solves_cartpole_with_3_step_returns"),
               "SAC": ONLY + "1: n-step returns are DQN's"},
    # DQN
    "double_q": {"DQN": LEARNER},
    "dueling": {"DQN": LEARNER},
    "epsilon": {"DQN": ("tests/test_dqn.py::test_dqn_module_heads_and_epsilon_greedy",
                        "tests/test_bad_input_settings.py::test_bare_float_epsilon_is_a_constant_schedule")},
    "td_error_loss_fn": {"DQN": LEARNER},
    "training_intensity": {"DQN": ONLY + "None: one gradient step per sampling step"},
    # SAC
    **{k: {"SAC": LEARNER} for k in ("twin_q", "initial_alpha", "target_entropy", "actor_lr", "critic_lr", "alpha_lr")},
    # BC
    "input_": {"BC": T + "test_bc_input_and_batch_size_change_training"},
    # AlgorithmConfig.api_stack(**switches)
    "api_stack": {ALL: T + "test_api_stack_accepts_only_the_new_stack"},
}

# DefaultModelConfig fields (and the algorithms' model-config additions) -> evidence, as above.
MODEL_FIELDS = {
    **{case[0]: MODEL for case in MODEL_EFFECTS},
    "max_seq_len": T + "test_max_seq_len_changes_recurrent_training",
    "head_fcnet_use_layernorm": (MODEL, T + "test_head_fcnet_use_layernorm_reaches_the_gaussian_policy_head"),
    # PPO and BC read them; the modules that do not (DQN, SAC) refuse non-default values
    "free_log_std": {ALL: MODEL, "SAC": (REFUSE, T + "test_default_modules_refuse_the_model_fields_they_do_not_read"),
                     "DQN": (REFUSE, T + "test_default_modules_refuse_the_model_fields_they_do_not_read")},
    "log_std_clip_param": {ALL: MODEL,
                           "SAC": (REFUSE, T + "test_default_modules_refuse_the_model_fields_they_do_not_read",
                                   T + "test_sac_squashed_gaussian_clamps_the_log_std_to_rllibs_range"),
                           "DQN": (REFUSE, T + "test_default_modules_refuse_the_model_fields_they_do_not_read")},
    "vf_share_layers": {ALL: MODEL, **{a: (REFUSE, T + "test_default_modules_refuse_the_model_fields_they_do_not_read")
                                       for a in ("DQN", "SAC", "BC")}},
    "lstm_use_prev_action": (REFUSE, T + "test_default_model_config_refuses_lstm_use_prev_fields"),
    "lstm_use_prev_reward": (REFUSE, T + "test_default_model_config_refuses_lstm_use_prev_fields"),
    "double_q": LEARNER, "dueling": LEARNER, "twin_q": LEARNER,
    "epsilon": "tests/test_dqn.py::test_dqn_module_heads_and_epsilon_greedy",
}
NO_EFFECT: set = set()  # every accepted setting has an effect or is refused (issue 11, point 7)


def accepted_settings(cls):
    """Every setting name `cls` accepts: its value table, its attributes, its training keys and the
    keyword arguments of its builder methods (api_stack's switches are one setting, "api_stack")."""
    config = cls()
    names = set(config.settings_table()) | set(vars(config)) | set(config._training_keys()) | {"api_stack"}
    for method in ("environment", "env_runners", "learners", "rl_module", "multi_agent", "evaluation", "debugging",
                   "offline_data"):
        if hasattr(config, method):
            params = inspect.signature(getattr(config, method)).parameters.values()
            names |= {p.name for p in params if p.kind is not p.VAR_KEYWORD}
    return names


def _evidence(table, name, algo=ALL):
    entry = table[name]
    found = entry.get(algo, entry.get(ALL)) if isinstance(entry, dict) else entry
    return found if isinstance(found, tuple) else (found,)


@pytest.mark.parametrize("algo", list(CONFIG_CLASSES))
def test_every_accepted_setting_is_in_the_table(algo):
    """Fails when a config gains a setting (a value-table entry, an attribute, a training key or a
    builder keyword) that the table does not map to the test showing its effect or its refusal."""
    missing = sorted(name for name in accepted_settings(CONFIG_CLASSES[algo])
                     if name not in SETTINGS or _evidence(SETTINGS, name, algo) == (None,))
    assert not missing, f"{algo} accepts settings the table of tests/test_honest_settings.py lacks: {missing}"


def test_every_model_config_field_is_in_the_table():
    import dataclasses

    from jaxrl_modules import DefaultModelConfig
    from jaxrl_modules.algorithms.dqn.module import DQNModelConfig
    from jaxrl_modules.algorithms.sac.module import SACModelConfig

    fields = {f.name for cls in (DefaultModelConfig, DQNModelConfig, SACModelConfig) for f in dataclasses.fields(cls)}
    assert not sorted(fields - set(MODEL_FIELDS)), f"model-config fields without an entry: {sorted(fields - set(MODEL_FIELDS))}"
    assert not sorted(set(MODEL_FIELDS) - fields), f"stale entries: {sorted(set(MODEL_FIELDS) - fields)}"


def test_the_table_has_no_stale_settings():
    accepted = set().union(*(accepted_settings(cls) for cls in CONFIG_CLASSES.values()))
    assert not sorted(set(SETTINGS) - accepted)
    for name, entry in SETTINGS.items():
        algos = {a for a in entry if a != ALL}
        assert algos <= set(CONFIG_CLASSES), (name, algos)
        for algo in algos:
            assert name in accepted_settings(CONFIG_CLASSES[algo]), f"{name!r} listed for {algo}, which does not accept it"


def _check_evidence(evidence, name, algo):
    """The evidence names something real: a test function, a case of this file's matrices, a reason."""
    refused_ids = [c.id for c in REFUSED]
    if evidence == LEARNER:
        assert (algo, name) in {(c[0], c[1]) for c in LEARNER_EFFECTS} or (
            algo == ALL and name in {c[1] for c in LEARNER_EFFECTS}), (algo, name)
    elif evidence == PPO_SAMPLING:
        assert name in {c[0] for c in PPO_SAMPLING_EFFECTS}, name
    elif evidence == OFF_POLICY:
        assert name in {c[0] for c in OFF_POLICY_SAMPLING_EFFECTS}, name
    elif evidence == MODEL:
        assert name in {c[0] for c in MODEL_EFFECTS}, name
    elif evidence == REFUSE:
        assert any(i.startswith(f"{algo}-") and name in i for i in refused_ids) or (
            algo == ALL and any(name in i for i in refused_ids)), (algo, name)
    elif evidence.startswith((ONLY, NOOP)):
        assert len(evidence.split(":", 1)[1]) > 3, (name, evidence)
        if evidence.startswith(ONLY) and algo != ALL and name not in ("policies_to_train",):
            from test_bad_input_settings import SETTER_CASES

            assert any(c.values[0] == algo and c.values[2] == name for c in SETTER_CASES), (
                f"{algo}.{name}: no refusal case in {SETTER_REJECTS}")
    elif evidence.startswith(PENDING):
        pass  # another engineer's test file (num_env_runners)
    else:
        path, _, test = evidence.partition("::")
        file = Path(__file__).resolve().parents[1] / path
        assert file.is_file(), f"{path} does not exist"
        assert not test or f"def {test}(" in file.read_text(), f"{evidence} does not exist"


def test_every_entry_names_real_evidence():
    for name in SETTINGS:
        for algo in [a for a in SETTINGS[name]]:
            for evidence in _evidence(SETTINGS, name, algo):
                _check_evidence(evidence, name, algo if algo != ALL else _first_algo_accepting(name))
    for name, entry in MODEL_FIELDS.items():
        default_algo = {"double_q": "DQN", "dueling": "DQN", "twin_q": "SAC"}.get(name, "PPO")
        for algo in (entry if isinstance(entry, dict) else [ALL]):
            for evidence in _evidence(MODEL_FIELDS, name, algo):
                _check_evidence(evidence, name, default_algo if algo == ALL else algo)


def _first_algo_accepting(name):
    """For a "*" entry: an algorithm that accepts the setting and has no entry of its own for it."""
    own = set(SETTINGS[name]) - {ALL}
    return next(a for a, cls in CONFIG_CLASSES.items() if a not in own and name in accepted_settings(cls))


def test_no_setting_is_accepted_without_effect():
    """Every accepted setting has an effect or is refused: the table has no "no effect" entry (NO_EFFECT is
    empty; a new one would need a documented reason here)."""
    found = {(algo, name) for name, entry in SETTINGS.items() for algo in CONFIG_CLASSES
             if name in accepted_settings(CONFIG_CLASSES[algo])
             and any(e.startswith(NOOP) for e in _evidence(SETTINGS, name, algo))}
    assert found == NO_EFFECT


@pytest.mark.parametrize("free_log_std", [False, True])
def test_head_fcnet_use_layernorm_reaches_the_gaussian_policy_head(free_log_std):
    """As for every other head (RLlib applies it to every head MLP), a DiagGaussian policy head gets a
    LayerNorm after each hidden layer with head_fcnet_use_layernorm: params and outputs change."""
    shared = {**HEAD, "free_log_std": free_log_std}
    base = module_outcome(shared, CARTPOLE_OBS, BOX_ACT)
    normed = module_outcome({**shared, "head_fcnet_use_layernorm": True}, CARTPOLE_OBS, BOX_ACT)
    head = normed[0]["pi"]["mean" if free_log_std else "net"]
    assert "layernorm_0" in head and "layernorm_0" not in base[0]["pi"]["mean" if free_log_std else "net"]
    assert "layernorm_0" in normed[0]["vf"]  # the value head had it already
    assert not np.allclose(base[1], normed[1])


def test_lr_schedule_counts_the_updates_of_every_env_runners_rows():
    """lr_schedule="linear" steps once per iteration: the learner counts the minibatch updates of the
    rows an iteration samples, over `max(1, num_env_runners) * num_envs_per_env_runner` envs."""
    config = (PPOConfig().env_runners(num_env_runners=2, rollout_fragment_length=16)
              .training(lr=1.0, lr_schedule="linear", total_iterations=4, num_epochs=1, minibatch_size=16,
                        train_batch_size_per_learner=32))
    module = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=TINY)
    lr = PPOLearner(module, config).lr
    # 2 runners x 1 env x 16 steps = 32 rows = 2 minibatch updates an iteration: update 2 starts iteration 1
    assert [float(lr(jnp.asarray(c))) for c in (0, 1, 2, 4)] == [1.0, 1.0, 0.75, 0.5]
