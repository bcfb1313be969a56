"""JAX translations of the RLlib RLModule guide's examples that need no algorithm."""

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_modules import Columns, DefaultModelConfig, MultiRLModule, MultiRLModuleSpec, RLModule, RLModuleSpec
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
from jaxrl_modules.apis import ValueFunctionAPI
from jaxrl_modules.distributions import Categorical, DiagGaussian

from conftest import CARTPOLE_ACT, CARTPOLE_OBS

OBS = {Columns.OBS: np.random.default_rng(1).normal(size=(4, 4)).astype(np.float32)}


def test_construct_default_module_directly_and_through_spec():
    module = DefaultPPORLModule(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT,
                                model_config=DefaultModelConfig(fcnet_hiddens=[128, 128]))
    spec = RLModuleSpec(module_class=DefaultPPORLModule, observation_space=CARTPOLE_OBS,
                        action_space=CARTPOLE_ACT, model_config={"fcnet_hiddens": [32]})
    built = spec.build()
    params = built.init(jax.random.key(0))
    assert params["encoder"]["mlp"]["dense_0"]["kernel"].shape == (4, 32)
    action_dist_class = module.get_inference_action_dist_cls()
    mp = module.init(jax.random.key(0))
    logits = module.forward_inference(mp, OBS)[Columns.ACTION_DIST_INPUTS]
    action = action_dist_class.from_logits(logits).to_deterministic().sample(seed=jax.random.key(0))
    assert action.shape == (4,)


def test_multi_rl_module_spec_per_agent_and_shared():
    per_agent = MultiRLModuleSpec(rl_module_specs={
        "p0": RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config={"fcnet_hiddens": [8]}),
        "p1": RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config={"fcnet_hiddens": [16]}),
    }).build()
    params = per_agent.init(jax.random.key(0))
    assert set(params) == {"p0", "p1"} and "p0" in per_agent and len(per_agent) == 2
    assert params["p1"]["encoder"]["mlp"]["dense_0"]["kernel"].shape == (4, 16)
    shared = MultiRLModuleSpec(rl_module_specs=RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT,
                                                            model_config={"fcnet_hiddens": [8]})).build()
    assert shared.keys() == {"default_policy"}
    p1_spec = RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT)
    p1_alone = MultiRLModuleSpec(rl_module_specs={"p1": p1_spec}).build(module_id="p1")
    assert isinstance(p1_alone, DefaultPPORLModule)


class CustomTorchPolicy(RLModule):
    """The guide's first custom module: setup + _forward returning dist inputs."""

    def setup(self):
        super().setup()
        hidden = self.model_config["hidden_dim"]
        self._policy_net = nn.Sequential([nn.Dense(hidden), nn.relu, nn.Dense(self.action_space.n)])

    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self._policy_net(batch[Columns.OBS])}


class ReturnsActions(CustomTorchPolicy):
    """Returning ACTIONS directly: no sampling, no logp (no dist inputs)."""

    def _forward_exploration(self, batch, **kwargs):
        logits = self._policy_net(batch[Columns.OBS])
        return {Columns.ACTIONS: jax.random.categorical(self.make_rng("action"), logits)}

    def _forward_inference(self, batch, **kwargs):
        return {Columns.ACTIONS: jnp.argmax(self._policy_net(batch[Columns.OBS]), -1)}


def test_custom_setup_and_forward():
    m = RLModuleSpec(CustomTorchPolicy, CARTPOLE_OBS, CARTPOLE_ACT, model_config={"hidden_dim": 32}).build()
    p = m.init(jax.random.key(0))
    out = m.forward_exploration(p, OBS, jax.random.key(1))
    assert set(out) == {Columns.ACTION_DIST_INPUTS, Columns.ACTIONS, Columns.ACTION_LOGP}
    m2 = ReturnsActions(observation_space=CARTPOLE_OBS, action_space=CARTPOLE_ACT, model_config={"hidden_dim": 8})
    p2 = m2.init(jax.random.key(0))
    out2 = m2.forward_exploration(p2, OBS, jax.random.key(1))
    assert set(out2) == {Columns.ACTIONS} and out2[Columns.ACTIONS].shape == (4,)
    assert set(m2.forward_inference(p2, OBS)) == {Columns.ACTIONS}


class TemperatureCategorical(Categorical):
    @classmethod
    def from_logits(cls, inputs, **kwargs):
        return cls(logits=inputs / 1000.0)  # nearly uniform


class CustomDistModule(CustomTorchPolicy):
    def get_exploration_action_dist_cls(self):
        return TemperatureCategorical


def test_custom_action_distribution_class():
    m = CustomDistModule(observation_space=CARTPOLE_OBS, action_space=gym.spaces.Discrete(4),
                         model_config={"hidden_dim": 8})
    p = m.init(jax.random.key(0))
    out = m.forward_exploration(p, {Columns.OBS: np.ones((2, 4), np.float32)}, jax.random.key(0))
    assert jnp.allclose(out[Columns.ACTION_LOGP], jnp.log(0.25), atol=1e-2)


class AutoregressiveActionsRLM(RLModule, ValueFunctionAPI):
    """The guide's two-part action module: a1 ~ prior(obs), a2 ~ posterior(obs, a1)."""

    def setup(self):
        super().setup()
        self._prior_net = nn.Sequential([nn.Dense(16), nn.tanh, nn.Dense(self.action_space[0].n)])
        self._posterior_net = nn.Sequential([nn.Dense(16), nn.tanh, nn.Dense(2 * self.action_space[1].shape[0])])
        self._value_net = nn.Sequential([nn.Dense(16), nn.tanh, nn.Dense(1)])

    def _pi(self, obs, inference):
        prior_out = self._prior_net(obs)
        dist_a1 = Categorical.from_logits(prior_out)
        if inference:
            dist_a1 = dist_a1.to_deterministic()
        a1 = dist_a1.sample(seed=self.make_rng("action"))
        posterior_out = self._posterior_net(jnp.concatenate([obs, jax.nn.one_hot(a1, self.action_space[0].n)], -1))
        dist_a2 = DiagGaussian.from_logits(posterior_out)
        if inference:
            dist_a2 = dist_a2.to_deterministic()
        a2 = dist_a2.sample(seed=self.make_rng("action"))
        return {Columns.ACTIONS: (a1, a2), Columns.ACTION_LOGP: dist_a1.logp(a1) + dist_a2.logp(a2),
                Columns.ACTION_DIST_INPUTS: jnp.concatenate([prior_out, posterior_out], -1)}

    def _forward_inference(self, batch, **kwargs):
        return self._pi(batch[Columns.OBS], inference=True)

    def _forward_exploration(self, batch, **kwargs):
        return self._pi(batch[Columns.OBS], inference=False)

    def _forward_train(self, batch, **kwargs):
        return self._forward_exploration(batch)

    def _compute_values(self, batch, embeddings=None):
        return self._value_net(batch[Columns.OBS])[..., 0]


def test_autoregressive_two_part_actions():
    space = gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,), np.float32)))
    m = AutoregressiveActionsRLM(observation_space=CARTPOLE_OBS, action_space=space)
    p = m.init(jax.random.key(0))
    out = m.forward_exploration(p, OBS, jax.random.key(3))
    a1, a2 = out[Columns.ACTIONS]
    assert a1.shape == (4,) and a2.shape == (4, 2) and out[Columns.ACTION_LOGP].shape == (4,)
    inf = m.forward_inference(p, OBS)
    assert inf[Columns.ACTION_LOGP].shape == (4,)  # deterministic parts sum over event dims
    train_dist = m.get_train_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    assert jnp.allclose(train_dist.logp(out[Columns.ACTIONS]), out[Columns.ACTION_LOGP], atol=1e-5)
    assert m.compute_values(p, OBS).shape == (4,)


SHARED_ENCODER_ID = "shared_encoder"


class SharedEncoder(RLModule):
    def setup(self):
        self._net = nn.Dense(self.model_config["embedding_dim"])

    def _forward(self, batch, **kwargs):
        return {"encoder_embeddings": self._net(batch[Columns.OBS])}


class VPGPolicyAfterSharedEncoder(RLModule):
    def setup(self):
        super().setup()
        self._pi_head = nn.Sequential([nn.Dense(self.model_config["hidden_dim"]), nn.relu, nn.Dense(self.action_space.n)])

    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self._pi_head(batch["encoder_embeddings"])}


class VPGMultiRLModuleWithSharedEncoder(MultiRLModule):
    def setup(self):
        super().setup()
        assert SHARED_ENCODER_ID in self._rl_modules and len(self._rl_modules) > 1
        self.encoder = self._rl_modules[SHARED_ENCODER_ID]

    def _forward(self, batch, **kwargs):
        fwd_out = {}
        for policy_id, policy_batch in batch.items():
            rl_module = self._rl_modules[policy_id]
            policy_batch = dict(policy_batch)
            policy_batch["encoder_embeddings"] = self.encoder._forward(policy_batch)["encoder_embeddings"]
            fwd_out[policy_id] = rl_module._forward(policy_batch, **kwargs)
        return fwd_out


def shared_encoder_spec():
    return MultiRLModuleSpec(
        multi_rl_module_class=VPGMultiRLModuleWithSharedEncoder,
        rl_module_specs={
            SHARED_ENCODER_ID: RLModuleSpec(SharedEncoder, observation_space=CARTPOLE_OBS,
                                            model_config={"embedding_dim": 8}),
            "p0": RLModuleSpec(VPGPolicyAfterSharedEncoder, CARTPOLE_OBS, CARTPOLE_ACT,
                               model_config={"embedding_dim": 8, "hidden_dim": 16}),
            "p1": RLModuleSpec(VPGPolicyAfterSharedEncoder, CARTPOLE_OBS, CARTPOLE_ACT,
                               model_config={"embedding_dim": 8, "hidden_dim": 16}),
        })


def test_shared_encoder_multi_rl_module():
    multi = shared_encoder_spec().build()
    params = multi.init(jax.random.key(0))
    assert set(params) == {SHARED_ENCODER_ID, "p0", "p1"}
    assert params[SHARED_ENCODER_ID]["_net"]["kernel"].shape == (4, 8)
    assert params["p0"]["_pi_head"]["layers_0"]["kernel"].shape == (8, 16)
    out = multi.forward_exploration(params, {"p0": OBS, "p1": OBS}, jax.random.key(1))
    assert set(out) == {"p0", "p1"} and out["p0"][Columns.ACTIONS].shape == (4,)
    emb = SharedEncoder(observation_space=CARTPOLE_OBS, model_config={"embedding_dim": 8}).apply(
        {"params": params[SHARED_ENCODER_ID]}, OBS, method="_forward")["encoder_embeddings"]
    head = multi["p0"]
    logits = head.apply({"params": params["p0"]}, {"encoder_embeddings": emb}, method="_forward")[Columns.ACTION_DIST_INPUTS]
    assert jnp.allclose(out["p0"][Columns.ACTION_DIST_INPUTS], logits, atol=1e-6)
    only_p1 = multi.forward_inference(params, {"p1": OBS})
    assert set(only_p1) == {"p1"}
    with pytest.raises(ValueError, match="encoder_embeddings"):
        multi["p0"].init(jax.random.key(0))
