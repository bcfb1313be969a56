# %% [markdown]
# # 06 · Multi-agent PPO
# `MultiAgentCartPole(config={"num_agents": 2})` is RLlib's dict-keyed multi-agent CartPole.
# `multi_agent(policies=..., policy_mapping_fn=...)` maps agents to policies; each policy is a
# sub-module of one MultiRLModule and one optax optimizer covers all of them.

# %%
import flax.linen as nn
import matplotlib.pyplot as plt

from jaxrl_modules import Columns, MultiRLModule, MultiRLModuleSpec, RLModule, RLModuleSpec
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.apis import ValueFunctionAPI
from jaxrl_modules.envs import MultiAgentCartPole

FAST = dict(lr=1e-3, lambda_=0.95, clip_param=0.2, vf_loss_coeff=0.5, grad_clip=0.5, num_epochs=6,
            minibatch_size=256, train_batch_size_per_learner=1024, use_kl_loss=False, vf_clip_param=1e6)


def run(algo, iterations):
    curves = {}
    for _ in range(iterations):
        result = algo.train()
        for mid, ret in result["env_runners"]["module_episode_returns_mean"].items():
            curves.setdefault(mid, []).append(ret)
    return curves


two_policies = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
                .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
                .rl_module(model_config={"fcnet_hiddens": [32, 32]}).training(**FAST)).build()
curves_two = run(two_policies, 25)
type(two_policies.learner).__name__  # identical policies: one vmapped (stacked) update

# %% [markdown]
# Without `policies`, every agent shares one policy (`default_policy`):

# %%
one_policy = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
              .rl_module(model_config={"fcnet_hiddens": [32, 32]}).training(**FAST)).build()
curves_shared = run(one_policy, 25)
one_policy.get_module(None).keys()

# %% [markdown]
# ## The shared encoder, trained with one optimizer
# The guide's shared-encoder MultiRLModule; PPO needs `ValueFunctionAPI` of every trained policy,
# so the heads add a value head over the shared embeddings.

# %%
SHARED = "shared_encoder"


class SharedEncoder(RLModule):
    def setup(self):
        self._net = nn.Dense(self.model_config["embedding_dim"])

    def _forward(self, batch, **kwargs):
        return {"encoder_embeddings": nn.tanh(self._net(batch[Columns.OBS]))}


class Head(RLModule, ValueFunctionAPI):
    def setup(self):
        self._pi_head = nn.Sequential([nn.Dense(32), nn.relu, nn.Dense(self.action_space.n)])
        self._vf_head = nn.Sequential([nn.Dense(32), nn.relu, nn.Dense(1)])

    def _forward(self, batch, **kwargs):
        emb = batch["encoder_embeddings"]
        return {Columns.ACTION_DIST_INPUTS: self._pi_head(emb), Columns.EMBEDDINGS: emb}

    def _compute_values(self, batch, embeddings=None):
        return self._vf_head(batch["encoder_embeddings"] if embeddings is None else embeddings)[..., 0]


class SharedEncoderMulti(MultiRLModule):
    def setup(self):
        super().setup()
        self.encoder = self._rl_modules[SHARED]

    def _forward(self, batch, **kwargs):
        out = {}
        for mid, policy_batch in batch.items():
            policy_batch = dict(policy_batch)
            policy_batch["encoder_embeddings"] = self.encoder._forward(policy_batch)["encoder_embeddings"]
            out[mid] = self._rl_modules[mid]._forward(policy_batch, **kwargs)
        return out


spec = MultiRLModuleSpec(multi_rl_module_class=SharedEncoderMulti, rl_module_specs={
    SHARED: RLModuleSpec(SharedEncoder, model_config={"embedding_dim": 32}),
    "p0": RLModuleSpec(Head), "p1": RLModuleSpec(Head)})
shared_encoder = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
                  .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, episode, **kw: f"p{agent_id}")
                  .rl_module(rl_module_spec=spec).training(**FAST)).build()
curves_encoder = run(shared_encoder, 25)
sorted(shared_encoder.get_params())

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3), sharey=True)
for ax, (title, curves) in zip(axes, [("two policies", curves_two), ("one shared policy", curves_shared),
                                      ("shared encoder", curves_encoder)]):
    for mid, values in curves.items():
        ax.plot(values, label=mid)
    ax.set_title(title)
    ax.set_xlabel("iteration")
    ax.legend()
axes[0].set_ylabel("return per agent (mean of last 100)")
fig.tight_layout()
