# %% [markdown]
# # 02 · Custom RLModules
# As in RLlib, a custom module overrides `setup()` (build sub-networks as attributes) and `_forward`
# or any of `_forward_exploration` / `_forward_inference` / `_forward_train`. In JAX the sub-networks
# are flax modules, randomness comes from `self.make_rng("action")`, and the public functions stay
# pure functions of `(params, batch, rng)`.

# %%
import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_modules import Columns, RLModule, RLModuleSpec
from jaxrl_modules.apis import SelfSupervisedLossAPI, ValueFunctionAPI
from jaxrl_modules.distributions import Categorical, DiagGaussian

OBS_SPACE = gym.make("CartPole-v1").observation_space
obs = {Columns.OBS: np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)}


class CustomTorchPolicy(RLModule):
    """The guide's first custom module: one policy net returning action-distribution inputs."""

    def setup(self):
        super().setup()
        hidden = self.model_config["hidden_dim"]  # a read-only mapping inside setup
        self._policy_net = nn.Sequential([nn.Dense(hidden), nn.relu, nn.Dense(self.action_space.n)])

    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self._policy_net(batch[Columns.OBS])}


module = RLModuleSpec(CustomTorchPolicy, OBS_SPACE, gym.spaces.Discrete(2), model_config={"hidden_dim": 32}).build()
params = module.init(jax.random.key(0))
out = module.forward_exploration(params, obs, jax.random.key(1))
{k: v.shape for k, v in out.items()}

# %% [markdown]
# The module returned only `action_dist_inputs`; exploration sampled `actions` from the default
# distribution of the action space (Categorical) and added `action_logp`. A module may instead return
# `actions` itself; then nothing is sampled for it:

# %%
class ReturnsActions(CustomTorchPolicy):
    def _forward_exploration(self, batch, **kwargs):
        logits = self._policy_net(batch[Columns.OBS])
        return {Columns.ACTIONS: jax.random.categorical(self.make_rng("action"), logits)}

    def _forward_inference(self, batch, **kwargs):
        return {Columns.ACTIONS: jnp.argmax(self._policy_net(batch[Columns.OBS]), -1)}


m2 = ReturnsActions(observation_space=OBS_SPACE, action_space=gym.spaces.Discrete(2), model_config={"hidden_dim": 8})
p2 = m2.init(jax.random.key(0))
m2.forward_exploration(p2, obs, jax.random.key(1)), m2.forward_inference(p2, obs)

# %% [markdown]
# ## Custom action distributions
# Override `get_exploration_action_dist_cls()` (or the inference / train ones) with any class that has
# `from_logits`; ours subclass distrax distributions. Here a high temperature makes exploration
# nearly uniform:

# %%
class TemperatureCategorical(Categorical):
    @classmethod
    def from_logits(cls, inputs, **kwargs):
        return cls(logits=inputs / 1000.0)


class CustomDistModule(CustomTorchPolicy):
    def get_exploration_action_dist_cls(self):
        return TemperatureCategorical


m3 = CustomDistModule(observation_space=OBS_SPACE, action_space=gym.spaces.Discrete(4), model_config={"hidden_dim": 8})
p3 = m3.init(jax.random.key(0))
np.exp(m3.forward_exploration(p3, obs, jax.random.key(2))[Columns.ACTION_LOGP])  # ≈ 0.25 each

# %% [markdown]
# ## The autoregressive two-part action module
# The guide's example samples `a1` from a prior head, then `a2` from a posterior head that sees `a1`.
# Its log-prob is the sum of both parts; inference uses the deterministic version of each part.

# %%
class AutoregressiveActionsRLM(RLModule, ValueFunctionAPI):
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


space = gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,), np.float32)))
ar = AutoregressiveActionsRLM(observation_space=OBS_SPACE, action_space=space)
ar_params = ar.init(jax.random.key(0))
sample = ar.forward_exploration(ar_params, obs, jax.random.key(3))
sample[Columns.ACTIONS], sample[Columns.ACTION_LOGP], ar.compute_values(ar_params, obs)

# %% [markdown]
# ## A module with its own loss: `SelfSupervisedLossAPI`
# A module declaring `SelfSupervisedLossAPI` authors `compute_self_supervised_loss(batch, fwd_out)`;
# the learner adds it to the algorithm's loss. Here: predict the next observation from the embedding.

# %%
class WithDynamicsLoss(CustomTorchPolicy, SelfSupervisedLossAPI):
    def setup(self):
        super().setup()
        self._dynamics = nn.Dense(OBS_SPACE.shape[0])

    def compute_self_supervised_loss(self, batch, fwd_out):
        prediction = self._dynamics(batch[Columns.OBS])
        return jnp.mean((prediction - batch[Columns.NEXT_OBS]) ** 2)


m4 = WithDynamicsLoss(observation_space=OBS_SPACE, action_space=gym.spaces.Discrete(2), model_config={"hidden_dim": 8})
p4 = m4.init(jax.random.key(0))
batch = {**obs, Columns.NEXT_OBS: obs[Columns.OBS] + 0.1}
fwd = m4.forward_train(p4, batch)
loss, grads = jax.value_and_grad(lambda p: m4.self_supervised_loss(p, batch, fwd))(p4)
float(loss), sorted(grads)
