"""Algorithm checkpoints store the state with readable names (`learner/params/pi/out/kernel`, ...):
values round-trip exactly, every array is checked against the algorithm's state with messages naming
the readable path, and checkpoints of the old flat `leaf_NNNNN` layout still restore."""

import json
import shutil
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxrl_modules.algorithms import state_io
from jaxrl_modules.algorithms.ppo import PPOConfig

from conftest import raises_naming


def tiny_config(hiddens=(4,)):
    return (PPOConfig().environment("CartPole-v1").rl_module(model_config={"fcnet_hiddens": list(hiddens)})
            .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1))


def as_data(tree):
    """Numpy leaves, typed PRNG keys as their key data: what must round-trip exactly."""
    def one(x):
        return np.asarray(jax.random.key_data(x) if state_io._is_key(x) else x)
    return jax.tree_util.tree_map(one, tree)


def assert_same_state(a, b):
    a, b = as_data(a), as_data(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert x.dtype == y.dtype and np.array_equal(x, y)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A trained tiny PPO, its checkpoint, and a second PPO (another seed) to restore into."""
    root = tmp_path_factory.mktemp("state_io")
    algo = tiny_config().build()
    algo.train()
    path = Path(algo.save_to_path(root / "ckpt"))
    other = tiny_config().debugging(seed=7).build()
    yield algo, path, other
    algo.stop()
    other.stop()


def write_legacy(directory: Path, algo) -> None:
    """The layout written before readable names: flat `leaf_NNNNN` arrays in `jax.tree_util` order and
    an index `{leaf: {path, shape, dtype}}` in algorithm.json without "state_format"."""
    flat = jax.tree_util.tree_flatten_with_path(algo._state())[0]
    leaves = {f"leaf_{i:05d}": np.asarray(as_data(x)) for i, (_, x) in enumerate(flat)}
    shutil.rmtree(directory / "algorithm_state")
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(directory / "algorithm_state", leaves)
        ckptr.wait_until_finished()
    meta = json.loads((directory / "algorithm.json").read_text())
    meta.pop("state_format")
    meta["state"] = {f"leaf_{i:05d}": {"path": jax.tree_util.keystr(p), "shape": list(np.shape(leaves[f"leaf_{i:05d}"])),
                                       "dtype": str(leaves[f"leaf_{i:05d}"].dtype)} for i, (p, _) in enumerate(flat)}
    (directory / "algorithm.json").write_text(json.dumps(meta))


def test_state_is_saved_with_readable_names_and_restores_exactly(saved):
    algo, path, other = saved
    with ocp.StandardCheckpointer() as ckptr:
        tree = ckptr.metadata(path / "algorithm_state").item_metadata.tree
    assert set(tree) == {"env_steps", "learner", "rng"}
    assert tuple(tree["learner"]["params"]["pi"]["out"]["kernel"].shape) == (4, 2)
    assert tuple(tree["learner"]["opt_state"]["0"]["0"]["mu"]["pi"]["out"]["kernel"].shape) == (4, 2)
    assert tree["rng"].dtype == np.uint32  # a typed key, saved as its key data
    meta = json.loads((path / "algorithm.json").read_text())
    assert meta["state_format"] == state_io.STATE_FORMAT
    assert meta["state"]["learner/params/pi/out/kernel"] == {"shape": [4, 2], "dtype": "float32"}
    assert meta["num_leaves"] == len(meta["state"]) == len(jax.tree_util.tree_leaves(algo._state()))
    other.restore_from_path(path)
    assert other.iteration == algo.iteration == 1
    assert_same_state(other._state(), algo._state())
    assert isinstance(other._state()["env_steps"], np.ndarray) and other._state()["env_steps"].dtype == np.int64


def test_old_leaf_layout_still_restores(saved, tmp_path):
    algo, path, other = saved
    old = tmp_path / "old"
    shutil.copytree(path, old)
    write_legacy(old, algo)
    with ocp.StandardCheckpointer() as ckptr:
        assert "leaf_00000" in ckptr.metadata(old / "algorithm_state").item_metadata.tree
    fresh = tiny_config().debugging(seed=11).build()
    fresh.restore_from_path(old)
    assert fresh.iteration == 1
    assert_same_state(fresh._state(), algo._state())


def test_old_leaf_layout_with_a_different_config_names_leaf_and_readable_path(saved, tmp_path):
    algo, path, _ = saved
    old = tmp_path / "old"
    shutil.copytree(path, old)
    write_legacy(old, algo)
    wider = tiny_config(hiddens=(8,)).build()
    raises_naming(ValueError, lambda: wider.restore_from_path(old), "algorithm.json", "state array leaf_",
                  "(learner/", "expects shape", "different config")


def copy_with_state_of(saved_path: Path, tmp_path: Path, hiddens) -> Path:
    """A copy of the checkpoint whose algorithm_state/ comes from an algorithm of another config."""
    target = tmp_path / "edited"
    shutil.copytree(saved_path, target)
    donor = tiny_config(hiddens=hiddens).build()
    shutil.rmtree(target / "algorithm_state")
    state_io.save_state(target, donor._state())
    return target


def test_state_file_of_another_config_is_named_by_readable_path(saved, tmp_path):
    _, path, other = saved
    edited = copy_with_state_of(path, tmp_path, (8,))
    raises_naming(ValueError, lambda: other.restore_from_path(edited), f"{edited}/algorithm_state",
                  "state array learner/params/actor_encoder/mlp/dense_0/bias has shape (8,) float32",
                  "expects shape (4,) float32", "different config")


def test_state_file_missing_an_array_names_it(saved, tmp_path):
    _, path, other = saved
    edited = copy_with_state_of(path, tmp_path, (4, 4))  # one more layer: extra arrays, none missing
    raises_naming(ValueError, lambda: other.restore_from_path(edited), "algorithm_state", "holds state array",
                  "dense_1", "does not have", "different config")
    shutil.rmtree(edited / "algorithm_state")
    state = jax.tree_util.tree_map(lambda x: x, other._state())  # new containers: other's state stays whole
    state["learner"].params["pi"]["out"].pop("bias")
    state_io.save_state(edited, state)
    raises_naming(ValueError, lambda: other.restore_from_path(edited), "algorithm_state",
                  "lacks state array learner/params/pi/out/bias", "expected with shape (2,) float32", "different config")


def test_unknown_state_format_and_garbage_state_are_value_errors(saved, tmp_path):
    _, path, other = saved
    edited = tmp_path / "edited"
    shutil.copytree(path, edited)
    meta = json.loads((edited / "algorithm.json").read_text())
    (edited / "algorithm.json").write_text(json.dumps({**meta, "state_format": "jaxrl_modules.algorithm_state/9"}))
    raises_naming(ValueError, lambda: other.restore_from_path(edited), "'state_format'", state_io.STATE_FORMAT,
                  "algorithm_state/9")
    (edited / "algorithm.json").write_text(json.dumps(meta))
    (edited / "algorithm_state" / "_METADATA").write_bytes(b"{garbage")
    raises_naming(ValueError, lambda: other.restore_from_path(edited), "corrupt algorithm checkpoint",
                  "cannot read algorithm_state")


class Inner(NamedTuple):
    count: np.ndarray
    mu: dict


def test_named_tree_of_namedtuples_dicts_sequences_and_keys(tmp_path):
    state = {"opt": (Inner(np.int32(3), {"w": np.ones((2, 3), np.float32)}),), "rng": jax.random.key(3),
             "steps": np.int64(2**40)}
    tree = state_io.to_named_tree(state)
    assert set(tree) == {"opt", "rng", "steps"} and set(tree["opt"]["0"]) == {"count", "mu"}
    assert tree["opt"]["0"]["mu"]["w"].shape == (2, 3)
    assert np.array_equal(tree["rng"], jax.random.key_data(state["rng"]))
    state_io.save_state(tmp_path, state)
    restored = state_io.read_state(tmp_path, state, legacy=False)
    assert_same_state(restored, state)
    assert jax.random.key_impl(restored["rng"]) == jax.random.key_impl(state["rng"])


def test_names_that_would_collide_are_refused():
    raises_naming(ValueError, lambda: state_io.to_named_tree({"a/b": np.zeros(1), "a": {"b": np.zeros(2)}}),
                  "would both be saved as 'a/b'", "distinct")
    raises_naming(ValueError, lambda: state_io.to_named_tree({"a.b": np.zeros(1), "a": {"b": np.zeros(2)}}),
                  "would both be saved as 'a.b'", "distinct")
