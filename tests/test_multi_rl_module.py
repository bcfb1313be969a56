"""MultiRLModule: params keyed by ModuleID, vmapped groups equal single runs, stacked path."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import Columns, MultiRLModuleSpec, RLModuleSpec
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
from jaxrl_modules.rl_module import module_rng

from conftest import CARTPOLE_ACT, CARTPOLE_OBS


@pytest.fixture(scope="module")
def multi(ppo_spec):
    box = RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, gym.spaces.Box(-1, 1, (2,), np.float32),
                       model_config={"fcnet_hiddens": [8]})
    return MultiRLModuleSpec(rl_module_specs={"a": ppo_spec, "b": ppo_spec, "c": ppo_spec, "box": box}).build()


@pytest.fixture(scope="module")
def multi_params(multi):
    return multi.init(jax.random.key(0))


def batch(seed, n=5):
    return {Columns.OBS: np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)}


def test_params_keyed_by_module_id(multi, multi_params):
    assert set(multi_params) == {"a", "b", "c", "box"}
    for mid in multi.keys():
        own = jax.eval_shape(multi[mid].init, jax.random.key(0))
        assert jax.tree_util.tree_structure(own) == jax.tree_util.tree_structure(multi_params[mid])
    assert not jnp.allclose(multi_params["a"]["pi"]["out"]["kernel"], multi_params["b"]["pi"]["out"]["kernel"])
    assert len(multi) == 4 and "box" in multi and list(multi) == ["a", "b", "c", "box"]


def test_vmapped_group_equals_each_module_alone(multi, multi_params):
    batches = {"a": batch(0), "b": batch(1), "c": batch(2), "box": batch(3)}
    rng = jax.random.key(42)
    out = multi.forward_exploration(multi_params, batches, rng)
    for mid in batches:
        alone = multi[mid].forward_exploration(multi_params[mid], batches[mid], module_rng(rng, mid))
        for k in alone:
            assert jnp.allclose(out[mid][k], alone[k], atol=1e-6), (mid, k)
    # A module's stream depends on its id only, not on which other ids are present.
    only_b = multi.forward_exploration(multi_params, {"b": batches["b"]}, rng)
    assert set(only_b) == {"b"} and jnp.array_equal(only_b["b"][Columns.ACTIONS], out["b"][Columns.ACTIONS])
    train = multi.forward_train(multi_params, batches)
    assert train["a"][Columns.EMBEDDINGS].shape == (5, 16)


def test_unknown_module_id_is_an_error(multi, multi_params):
    with pytest.raises(ValueError, match="Unknown ModuleID.*'zzz'"):
        multi.forward_inference(multi_params, {"zzz": batch(0)})
    with pytest.raises(TypeError, match="dict"):
        multi.forward_inference(multi_params, [batch(0)])


def test_stacked_path_matches_dict_path(multi, multi_params):
    mids = ["a", "b", "c"]
    group = multi.stacked(mids)
    stacked = multi.stack_params(multi_params, mids)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(jnp.allclose, group.init(jax.random.key(0)), stacked))
    obs = np.stack([batch(i)[Columns.OBS] for i in range(3)])
    rng = jax.random.key(5)
    out = group.forward_exploration(stacked, {Columns.OBS: obs}, rng)
    assert out[Columns.ACTIONS].shape == (3, 5)
    ref = multi.forward_exploration(multi_params, {m: {Columns.OBS: obs[i]} for i, m in enumerate(mids)}, rng)
    for i, m in enumerate(mids):
        assert jnp.array_equal(out[Columns.ACTIONS][i], ref[m][Columns.ACTIONS])
    back = multi.unstack_params(stacked, mids)
    assert jnp.array_equal(back["b"]["pi"]["out"]["kernel"], multi_params["b"]["pi"]["out"]["kernel"])
    with pytest.raises(ValueError, match="identical specs"):
        multi.stacked(["a", "box"])


def test_with_and_without_module(multi):
    smaller = multi.without_module("box")
    assert list(smaller.keys()) == ["a", "b", "c"]
    bigger = smaller.with_module("d", DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT))
    assert list(bigger.keys()) == ["a", "b", "c", "d"] and list(multi.keys()) == ["a", "b", "c", "box"]


def test_inference_only_multi_drops_critics(ppo_spec):
    m = MultiRLModuleSpec(rl_module_specs={"a": ppo_spec}, inference_only=True).build()
    assert "vf" not in m.init(jax.random.key(0))["a"]


def test_rllib_multi_module_fidelity(multi, ppo_spec):
    """as_multi_rl_module() is the module itself; keys() is set-like; from_module(build()) == spec
    with inference_only resolved from the sub-specs; update() merges as RLlib's."""
    assert multi.as_multi_rl_module() is multi
    keys = multi.keys()
    assert keys == {"a", "b", "c", "box"} and keys & {"a", "zz"} == {"a"} and keys | {"d"} == {"a", "b", "c", "box", "d"}
    assert list(keys) == ["a", "b", "c", "box"]
    spec = MultiRLModuleSpec(rl_module_specs={"p0": ppo_spec, "p1": ppo_spec})
    assert spec.inference_only is False and MultiRLModuleSpec.from_module(spec.build()) == spec
    inf = MultiRLModuleSpec(rl_module_specs={"p0": RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT,
                                                                inference_only=True)})
    assert inf.inference_only is True and MultiRLModuleSpec.from_module(inf.build()) == inf
    forced = MultiRLModuleSpec(rl_module_specs={"p0": ppo_spec}, inference_only=True)
    assert forced["p0"].inference_only and not ppo_spec.inference_only  # the user's spec is not mutated
    assert MultiRLModuleSpec.from_module(forced.build()) == forced
    big = RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config={"fcnet_hiddens": [8]})
    other = MultiRLModuleSpec(rl_module_specs={"p0": big, "p2": big})
    kept = MultiRLModuleSpec(rl_module_specs={"p0": ppo_spec}).update(other)  # RLlib's default: override=False
    assert set(kept.module_specs()) == {"p0", "p2"} and kept["p0"] == ppo_spec
    replaced = MultiRLModuleSpec(rl_module_specs={"p0": ppo_spec}).update(other, override=True)
    assert set(replaced.module_specs()) == {"p0", "p2"} and replaced["p0"] is big
    assert replaced.inference_only is False


def test_one_shared_spec_answers_every_module_id(ppo_spec):
    shared = MultiRLModuleSpec(rl_module_specs=ppo_spec)
    assert "p0" in shared and "agent_7" in shared and shared["agent_7"] is ppo_spec
    assert shared.build().keys() == {"default_policy"}
    assert isinstance(shared.build("agent_7"), DefaultPPORLModule)


def test_get_module_of_multi_agent_algorithms():
    """get_module() without an id is the whole MultiRLModule; one shared spec for every agent is
    one module under default_policy; an unknown id lists the available ones."""
    from jaxrl_modules import MultiRLModule
    from jaxrl_modules.algorithms.ppo import PPOConfig
    from jaxrl_modules.envs import MultiAgentCartPole

    base = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
            .rl_module(model_config={"fcnet_hiddens": [4]}).training(train_batch_size_per_learner=64, minibatch_size=32))
    two = base.copy().multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda aid, *a, **kw: f"p{aid}").build()
    module = two.get_module()
    assert isinstance(module, MultiRLModule) and module.keys() == {"p0", "p1"}
    assert two.get_module("p1") is module["p1"] and set(two.get_params()) == {"p0", "p1"}
    with pytest.raises(KeyError, match=r"'zz' not found; available: \['p0', 'p1'\]"):
        two.get_module("zz")
    spec = RLModuleSpec(DefaultPPORLModule, model_config={"fcnet_hiddens": [4]})
    shared = (base.copy().rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=spec))
              .multi_agent(policy_mapping_fn=lambda aid, *a, **kw: "default_policy")).build()
    assert isinstance(shared.get_module(), MultiRLModule) and shared.get_module().keys() == {"default_policy"}


def test_shared_multi_spec_with_listed_policies_gives_one_module_each():
    from jaxrl_modules.algorithms.ppo import PPOConfig
    from jaxrl_modules.envs import MultiAgentCartPole

    spec = MultiRLModuleSpec(rl_module_specs=RLModuleSpec(DefaultPPORLModule, model_config={"fcnet_hiddens": [4]}))
    algo = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2}).rl_module(rl_module_spec=spec)
            .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda aid, *a, **kw: f"p{aid}")
            .training(train_batch_size_per_learner=64, minibatch_size=32)).build()
    assert algo.get_module().keys() == {"p0", "p1"}
    assert algo.get_params()["p0"]["pi"]["out"]["kernel"].shape == (4, 2)
