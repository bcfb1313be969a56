"""MAPPO (issue 12): the centralised-critic module reads the env's global state in its critic only, and
trains through the same all-in-jit PPO loop on JaxMARL envs, shared or per agent."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.columns import Columns
from jaxrl_modules.rl_module_spec import RLModuleSpec

pytest.importorskip("jaxmarl")
from jaxrl_modules.algorithms.ppo.mappo import MAPPOModule  # noqa: E402

SPREAD = "jaxmarl:MPE_simple_spread_v3"


def mappo(env=SPREAD, env_config=None, **model_config):
    return (PPOConfig().environment(env, env_config=env_config)
            .env_runners(num_envs_per_env_runner=4, rollout_fragment_length=32)
            .rl_module(rl_module_spec=RLModuleSpec(module_class=MAPPOModule),
                       model_config={"fcnet_hiddens": [32, 32], **model_config})
            .training(train_batch_size_per_learner=128, minibatch_size=64, num_epochs=2))


def test_the_critic_reads_the_global_state_and_the_actor_only_its_own_observation():
    algo = mappo().build()
    module, params = algo.module["default_policy"], algo.get_params()["default_policy"]
    assert params["actor_encoder"]["mlp"]["dense_0"]["kernel"].shape[0] == 18  # one agent's observation
    assert params["critic_encoder"]["mlp"]["dense_0"]["kernel"].shape[0] == 54  # all 3 agents' observations
    rng = np.random.default_rng(0)
    own, state = jnp.asarray(rng.normal(size=(5, 18)), jnp.float32), jnp.asarray(rng.normal(size=(5, 54)), jnp.float32)

    def outputs(own, state):
        batch = {Columns.OBS: {"obs": own, "global_state": state}}
        logits = module.forward_inference(params, batch)[Columns.ACTION_DIST_INPUTS]
        return np.asarray(logits), np.asarray(module.compute_values(params, batch))

    logits, values = outputs(own, state)
    logits_s, values_s = outputs(own, state + 1.0)  # another global state
    logits_o, values_o = outputs(own + 1.0, state)  # another own observation
    assert np.array_equal(logits, logits_s) and not np.allclose(values, values_s)
    assert not np.allclose(logits, logits_o) and np.array_equal(values, values_o)


def test_mappo_trains_in_build_train_fn_shared_and_stacked_per_agent():
    from jaxrl_modules.algorithms.ppo.stacked_learner import StackedPPOLearner

    params, metrics = jax.jit(mappo().build_train_fn(2))(jax.random.key(0))
    assert int(metrics["first_nonfinite_iteration"][-1]) == -1 and set(params) == {"default_policy"}
    per_agent = mappo().multi_agent(policies={"agent_0", "agent_1", "agent_2"},
                                    policy_mapping_fn=lambda agent, episode, **kw: agent)
    algo = per_agent.build()
    assert isinstance(algo.learner, StackedPPOLearner)
    result = algo.train()
    assert set(result["learners"]) == {"agent_0", "agent_1", "agent_2"}
    assert all(np.isfinite(x["total_loss"]) for x in result["learners"].values())


def test_on_smax_the_critic_reads_the_world_state():
    algo = mappo("jaxmarl:HeuristicEnemySMAX", {"scenario": "3m"}).build()
    space = algo.runner.observation_space
    assert space["global_state"].shape[0] != 3 * space["obs"].shape[0]  # SMAX's world_state, not concatenated obs
    params = algo.get_params()["default_policy"]
    assert params["critic_encoder"]["mlp"]["dense_0"]["kernel"].shape[0] == space["global_state"].shape[0]


def test_bad_mappo_settings_are_named():
    with pytest.raises(ValueError, match=r"vf_share_layers.*False for MAPPOModule"):
        mappo(vf_share_layers=True).build()
    with pytest.raises(ValueError, match=r"use_lstm.*False for MAPPOModule"):
        mappo(use_lstm=True).build()
    with pytest.raises(ValueError, match=r"MAPPOModule needs a Dict observation space"):
        (PPOConfig().environment("CartPole-v1").rl_module(rl_module_spec=RLModuleSpec(module_class=MAPPOModule))
         .build())
    from jaxrl_modules.multi_rl_module import MultiRLModuleSpec

    mixed = mappo().multi_agent(policies={"a", "b"},
                                policy_mapping_fn=lambda agent, episode, **kw: "a" if agent == "agent_0" else "b")
    mixed = mixed.rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={"a": RLModuleSpec(module_class=MAPPOModule),
                                                                               "b": RLModuleSpec()}))
    with pytest.raises(ValueError, match=r"every module reads the global state or none"):
        mixed.build()
