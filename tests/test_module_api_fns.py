"""Module APIs as pure functions (issue 11.2): `compute_values_fn()`, `compute_q_values_fn()`,
`forward_target_fn()` (and SAC's `action_dist_inputs_fn()`, `q_param_keys()`) are what the
learners call; the public jitted methods are one-line wrappers around them, so both agree, and
the pure functions compose with the caller's jit, grad and vmap."""

import ast
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl_modules
from jaxrl_modules import Columns
from jaxrl_modules.algorithms.dqn import DefaultDQNRLModule
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
from jaxrl_modules.algorithms.sac import DefaultSACRLModule, SACConfig
from jaxrl_modules.algorithms.sac.learner import SACLearner

from conftest import CARTPOLE_ACT, CARTPOLE_OBS

BOX_ACT = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
SMALL = {"fcnet_hiddens": [8]}
ALGORITHMS = Path(jaxrl_modules.__file__).parent / "algorithms"


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return {Columns.OBS: rng.normal(size=(6, 4)).astype(np.float32),
            Columns.ACTIONS: rng.uniform(-1, 1, (6, 1)).astype(np.float32)}


def _close(a, b):
    return all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, y: bool(jnp.allclose(x, y, atol=1e-6)), a, b)))


def test_pure_functions_equal_the_jitted_methods(batch):
    dqn = DefaultDQNRLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=SMALL)
    p = dqn.init(jax.random.key(0))
    obs = {Columns.OBS: batch[Columns.OBS]}
    assert _close(dqn.compute_q_values_fn()(p, obs), dqn.compute_q_values(p, obs))
    assert _close(dqn.forward_target_fn()(p, obs), dqn.forward_target(p, obs))
    sac = DefaultSACRLModule(observation_space=CARTPOLE_OBS, action_space=BOX_ACT, model_config=SMALL)
    ps = sac.init(jax.random.key(0))
    assert _close(sac.compute_q_values_fn()(ps, batch), sac.compute_q_values(ps, batch))
    assert _close(sac.forward_target_fn()(ps, batch), sac.forward_target(ps, batch))
    pi = sac.action_dist_inputs_fn()(ps, obs)
    assert set(pi) == {Columns.ACTION_DIST_INPUTS}
    assert _close(pi[Columns.ACTION_DIST_INPUTS], sac.forward_inference(ps, obs)[Columns.ACTION_DIST_INPUTS])
    ppo = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=SMALL)
    pp = ppo.init(jax.random.key(0))
    assert _close(ppo.compute_values_fn()(pp, obs), ppo.compute_values(pp, obs))
    emb = ppo.forward_train(pp, obs)[Columns.EMBEDDINGS]
    assert _close(ppo.compute_values_fn()(pp, obs, emb), ppo.compute_values(pp, obs, embeddings=emb))


def test_pure_functions_compose_with_grad_and_vmap(batch):
    sac = DefaultSACRLModule(observation_space=CARTPOLE_OBS, action_space=BOX_ACT, model_config=SMALL)
    p = sac.init(jax.random.key(0))
    q_fn = sac.compute_q_values_fn()
    grads = jax.jit(jax.grad(lambda params: q_fn(params, batch)["qf_preds"].sum()))(p)
    assert set(grads) == set(p)
    q_grads = jax.tree_util.tree_leaves((grads["qf"], grads["qf_twin"]))  # min(Q1, Q2): either may get them
    assert any(float(jnp.abs(g).sum()) > 0 for g in q_grads)
    assert all(float(jnp.abs(g).sum()) == 0 for g in jax.tree_util.tree_leaves(grads["pi"]))  # Q does not read pi
    stacked = jax.vmap(sac.init)(jax.random.split(jax.random.key(1), 3))
    q = jax.vmap(sac.forward_target_fn(), in_axes=(0, None))(stacked, batch)
    assert q["q_target_next"].shape == (3, 6)
    assert _close(q["q_target_next"][1], sac.forward_target(jax.tree_util.tree_map(lambda x: x[1], stacked), batch)
                  ["q_target_next"])


def test_pure_functions_check_the_batch_and_params(batch):
    dqn = DefaultDQNRLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config=SMALL)
    p = dqn.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        dqn.forward_target_fn()(p, {Columns.OBS: np.zeros((2, 5), np.float32)})
    with pytest.raises(ValueError, match="forward_target"):
        dqn.forward_target_fn()({k: v for k, v in p.items() if k != "af"}, {Columns.OBS: batch[Columns.OBS]})


def test_sac_q_param_keys_come_from_the_module():
    for twin, keys in [(True, ("qf_encoder", "qf", "qf_twin_encoder", "qf_twin")), (False, ("qf_encoder", "qf"))]:
        m = DefaultSACRLModule(observation_space=CARTPOLE_OBS, action_space=BOX_ACT, model_config={**SMALL, "twin_q": twin})
        assert m.q_param_keys() == keys
        learner = SACLearner(m, SACConfig())
        params = m.init(jax.random.key(0))
        learner.optimizer.init(params)  # the critic/actor partition comes from q_param_keys()
        assert learner.q_keys == set(keys) and set(params) - learner.q_keys == {"pi_encoder", "pi"}


@pytest.mark.parametrize("algo", ["dqn", "sac"])
def test_learners_call_no_private_hooks_and_name_no_params(algo):
    """No `apply(..., method="_...")` string calls and no hard-coded params keys in the learners."""
    tree = ast.parse((ALGORITHMS / algo / "learner.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "method":
            pytest.fail(f"{algo}/learner.py:{node.value.lineno} calls a module method by name")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value not in ("qf", "qf_twin", "qf_encoder", "qf_twin_encoder", "pi", "pi_encoder", "encoder",
                                      "af", "vf"), f"{algo}/learner.py:{node.lineno} names params key {node.value!r}"
        if isinstance(node, ast.Name):
            assert node.id != "ACTOR_KEYS"
