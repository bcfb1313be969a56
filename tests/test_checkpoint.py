"""Checkpoints: round trips, strict restores with clear errors, atomic writes."""

import json
import os

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import DefaultModelConfig, MultiRLModule, MultiRLModuleSpec, RLModule
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
from jaxrl_modules.serialization import space_from_json, space_to_json

from conftest import CARTPOLE_ACT, CARTPOLE_OBS


def equal(a, b):
    return jax.tree_util.tree_all(jax.tree_util.tree_map(lambda x, y: bool(jnp.array_equal(x, y)), a, b))


def test_save_from_checkpoint_restore(tmp_path, ppo_module, ppo_params):
    path = ppo_module.save_to_path(tmp_path / "ckpt", ppo_params)
    meta = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    assert meta["module_class"].endswith(":DefaultPPORLModule") and meta["inference_only"] is False
    assert meta["observation_space"]["type"] == "Box" and "library_version" in meta
    module, params = RLModule.from_checkpoint(path)
    assert isinstance(module, DefaultPPORLModule) and module.model_config == ppo_module.model_config
    assert module.action_space == CARTPOLE_ACT and equal(params, ppo_params)
    assert equal(ppo_module.restore_from_path(path), ppo_params)
    ppo_module.save_to_path(path, jax.tree_util.tree_map(lambda x: x + 1, ppo_params))  # overwrite atomically
    assert not equal(ppo_module.restore_from_path(path), ppo_params)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_mismatched_config_names_leaf_and_shapes(tmp_path, ppo_module, ppo_params):
    ppo_module.save_to_path(tmp_path / "c", ppo_params)
    big = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT,
                             model_config=DefaultModelConfig(fcnet_hiddens=[256, 256]))
    with pytest.raises(ValueError, match=r"params\['encoder'\]\['mlp'\]\['dense_0'\]\['bias'\].*\(16,\).*\(256,\)"):
        big.restore_from_path(tmp_path / "c")
    other = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT,
                               model_config=DefaultModelConfig(fcnet_hiddens=[16, 16], vf_share_layers=False))
    with pytest.raises(ValueError, match="missing from the checkpoint"):
        other.restore_from_path(tmp_path / "c")


def test_missing_and_corrupt_checkpoints(tmp_path, ppo_module, ppo_params):
    with pytest.raises(ValueError, match="No checkpoint directory"):
        ppo_module.restore_from_path(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="metadata.json is missing"):
        RLModule.from_checkpoint(tmp_path / "empty")
    ppo_module.save_to_path(tmp_path / "bad", ppo_params)
    (tmp_path / "bad" / "metadata.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ppo_module.restore_from_path(tmp_path / "bad")
    ppo_module.save_to_path(tmp_path / "bad2", ppo_params)
    for root, _, files in os.walk(tmp_path / "bad2" / "params"):
        for f in files:
            os.remove(os.path.join(root, f))
    with pytest.raises(ValueError, match="Corrupt checkpoint"):
        ppo_module.restore_from_path(tmp_path / "bad2")


def test_multi_rl_module_checkpoint(tmp_path, ppo_spec):
    multi = MultiRLModuleSpec(rl_module_specs={"p0": ppo_spec, "p1": ppo_spec}).build()
    params = multi.init(jax.random.key(1))
    multi.save_to_path(tmp_path / "m", params)
    module, restored = MultiRLModule.from_checkpoint(tmp_path / "m")
    assert module.keys() == {"p0", "p1"} and equal(restored, params)
    assert equal(multi.restore_from_path(tmp_path / "m"), params)
    one = multi[ "p1"].restore_from_path(tmp_path / "m" / "p1")
    assert equal(one, params["p1"])
    three = MultiRLModuleSpec(rl_module_specs={"p0": ppo_spec, "p1": ppo_spec, "p2": ppo_spec}).build()
    with pytest.raises(ValueError, match="ModuleIDs"):
        three.restore_from_path(tmp_path / "m")
    with pytest.raises(ValueError, match="MultiRLModule checkpoint"):
        multi["p0"].restore_from_path(tmp_path / "m")


def test_shared_encoder_checkpoint(tmp_path):
    from test_guide_examples import shared_encoder_spec

    multi = shared_encoder_spec().build()
    params = multi.init(jax.random.key(0))
    multi.save_to_path(tmp_path / "s", params)
    module, restored = RLModule.from_checkpoint(tmp_path / "s")
    assert type(module).__name__ == "VPGMultiRLModuleWithSharedEncoder" and equal(restored, params)


@pytest.mark.parametrize("space", [
    gym.spaces.Box(-1.0, 2.0, (2, 3), np.float32),
    gym.spaces.Box(np.array([-np.inf, 0]), np.array([np.inf, 1]), dtype=np.float64),
    gym.spaces.Box(0, 255, (4, 4, 1), np.uint8), gym.spaces.Discrete(3, start=1), gym.spaces.Discrete(5),
    gym.spaces.MultiDiscrete([3, 4], start=[1, -2]), gym.spaces.MultiDiscrete([[2, 3], [4, 5]]), gym.spaces.MultiBinary(3),
    gym.spaces.MultiBinary([2, 2]), gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Box(0.0, 1.0, (1,))]),
    gym.spaces.Dict({"a": gym.spaces.Discrete(2, start=-1), "b": gym.spaces.Tuple([])}), gym.spaces.Dict({})])
def test_spaces_round_trip_through_json(space):
    back = space_from_json(json.loads(json.dumps(space_to_json(space))))
    assert back == space and repr(back) == repr(space)
