"""Honest settings (issue 11, point 7): every setting a config accepts has an effect and a test,
or is rejected with a clear error.

Part 1: `multi_agent(policies_to_train=[...])` trains only the listed modules; the others act but
their params (and optimizer state, KL coefficient) stay exactly as they were.
Part 2: `grad_clip_by` "value", "norm" and "global_norm" each change the update as expected.
Part 3: the table of every accepted setting -> the test showing its effect (or its rejection),
and a test that fails when a config gains a setting the table does not list.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import MultiRLModuleSpec, RLModuleSpec
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule, PPOConfig, PPOLearner
from jaxrl_modules.algorithms.ppo.stacked_learner import StackedPPOLearner
from jaxrl_modules.envs import MultiAgentCartPole

from conftest import raises_naming

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
    from test_guide_examples import SHARED_ENCODER_ID, SharedEncoder
    from test_multi_agent import PPOHeadAfterSharedEncoder
    from test_guide_examples import VPGMultiRLModuleWithSharedEncoder

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
    from conftest import CARTPOLE_ACT, CARTPOLE_OBS

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
