"""Multi-agent PPO: MultiAgentCartPole env, per-policy mapping, a shared policy, the stacked
path for identical policies, and the guide's shared encoder trained by one optimizer."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxrl_modules import Columns, MultiRLModuleSpec, RLModuleSpec
from jaxrl_modules.algorithms.ppo import PPOConfig, PPOLearner
from jaxrl_modules.algorithms.ppo.stacked_learner import StackedPPOLearner
from jaxrl_modules.apis import ValueFunctionAPI
from jaxrl_modules.envs import MultiAgentCartPole

from ppo_configs import FAST
from test_guide_examples import SHARED_ENCODER_ID, SharedEncoder, VPGMultiRLModuleWithSharedEncoder, VPGPolicyAfterSharedEncoder


def test_multi_agent_cartpole_semantics():
    env = MultiAgentCartPole({"num_agents": 2})
    assert env.possible_agents == [0, 1] and env.observation_space is None
    obs, _ = env.reset(seed=3)
    assert np.array_equal(obs[0], obs[1])  # same seed for every copy, as in RLlib
    done = {}
    while not done.get(0):
        _, rew, term, trunc, _ = env.step({0: 0, 1: 1} if not done.get(1) else {0: 0})
        assert rew[0] == 1.0
        done.update({i: term[i] or trunc[i] for i in rew})
        if done[0]:
            with pytest.raises(ValueError, match="already done"):
                env.step({0: 0})
    with pytest.raises(ValueError, match="at least one agent"):
        env.step({})


def two_policy_config():
    return (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
            .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
            .rl_module(model_config={"fcnet_hiddens": [32, 32]}).training(**FAST))


@pytest.mark.slow
def test_two_policies_learn_through_the_stacked_update():
    algo = two_policy_config().build()
    assert isinstance(algo.learner, StackedPPOLearner)  # identical specs: one vmapped update
    assert set(algo.get_params()) == {"p0", "p1"}
    for _ in range(30):
        result = algo.train()
    per_module = result["env_runners"]["module_episode_returns_mean"]
    assert per_module["p0"] > 80 and per_module["p1"] > 80, per_module
    assert {"p0", "p1"} == set(result["learners"])
    p = algo.get_params()
    assert not np.allclose(p["p0"]["pi"]["out"]["kernel"], p["p1"]["pi"]["out"]["kernel"])


def test_one_shared_policy_for_all_agents():
    algo = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
            .rl_module(model_config={"fcnet_hiddens": [16]})
            .training(**{**FAST, "train_batch_size_per_learner": 256, "minibatch_size": 128})).build()
    assert algo.get_module().keys() == {"default_policy"} and isinstance(algo.learner, PPOLearner)
    result = algo.train()
    assert result["num_env_steps_sampled_lifetime"] == 128
    with pytest.raises(ValueError, match="unknown ModuleID"):
        (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
         .multi_agent(policies={"p0"}, policy_mapping_fn=lambda aid, ep, **kw: "nope")).build()


class PPOHeadAfterSharedEncoder(VPGPolicyAfterSharedEncoder, ValueFunctionAPI):
    """The guide's policy head plus what PPO requires of it: a value function."""

    def setup(self):
        super().setup()
        self._vf_head = nn.Sequential([nn.Dense(self.model_config["hidden_dim"]), nn.relu, nn.Dense(1)])

    def _forward(self, batch, **kwargs):
        out = super()._forward(batch)
        out[Columns.EMBEDDINGS] = batch["encoder_embeddings"]
        return out

    def _compute_values(self, batch, embeddings=None):
        return self._vf_head(batch["encoder_embeddings"] if embeddings is None else embeddings)[..., 0]


@pytest.mark.slow
def test_shared_encoder_trains_with_one_optimizer():
    head = dict(model_config={"embedding_dim": 16, "hidden_dim": 32})
    spec = MultiRLModuleSpec(
        multi_rl_module_class=VPGMultiRLModuleWithSharedEncoder,
        rl_module_specs={SHARED_ENCODER_ID: RLModuleSpec(SharedEncoder, model_config={"embedding_dim": 16}),
                         "p0": RLModuleSpec(PPOHeadAfterSharedEncoder, **head),
                         "p1": RLModuleSpec(PPOHeadAfterSharedEncoder, **head)})
    algo = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
            .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
            .rl_module(rl_module_spec=spec).training(**FAST)).build()
    assert isinstance(algo.learner, PPOLearner)
    before = algo.get_params()
    assert set(before) == {SHARED_ENCODER_ID, "p0", "p1"} and "_vf_head" in before["p0"]
    # One optax state over the whole params dict: the encoder is updated once per step.
    mu = algo.learner_state.opt_state[1][0].mu
    assert jax.tree_util.tree_structure(mu) == jax.tree_util.tree_structure(algo.learner_state.params)
    returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(25)]
    after = algo.get_params()
    assert not np.allclose(before[SHARED_ENCODER_ID]["_net"]["kernel"], after[SHARED_ENCODER_ID]["_net"]["kernel"])
    assert returns[-1] > returns[0] + 40, returns
