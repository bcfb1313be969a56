# %% [markdown]
# # 03 · MultiRLModules
# A `MultiRLModule` holds sub-modules keyed by ModuleID; its params are a dict keyed by ModuleID, and
# `params[mid]` is exactly what `multi[mid]` uses on its own.

# %%
import time

import flax.linen as nn
import gymnasium as gym
import jax
import matplotlib.pyplot as plt
import numpy as np

from jaxrl_modules import Columns, DefaultModelConfig, MultiRLModule, MultiRLModuleSpec, RLModule, RLModuleSpec
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule

env = gym.make("CartPole-v1")
OBS, ACT = env.observation_space, env.action_space
spec = RLModuleSpec(DefaultPPORLModule, OBS, ACT, model_config=DefaultModelConfig(fcnet_hiddens=[64, 64]))
per_agent = MultiRLModuleSpec(rl_module_specs={"p0": spec, "p1": spec}).build()
params = per_agent.init(jax.random.key(0))
batch = {Columns.OBS: np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)}
out = per_agent.forward_exploration(params, {"p0": batch, "p1": batch}, jax.random.key(1))
sorted(params), {mid: o[Columns.ACTIONS].shape for mid, o in out.items()}

# %% [markdown]
# A single spec shared by all agents builds one module under `default_policy`; identical sub-modules
# in one call run as one `jax.vmap` inside one jitted function, and only the ids in the batch run:

# %%
shared = MultiRLModuleSpec(rl_module_specs=spec).build()
only_p1 = per_agent.forward_inference(params, {"p1": batch})
shared.keys(), sorted(only_p1)

# %% [markdown]
# ## The guide's shared encoder
# Sub-classes override `setup` and `_forward` as in RLlib. The encoder is a sub-module of its own,
# its params live under its ModuleID, and the policy heads read its embeddings.

# %%
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
        self.encoder = self._rl_modules[SHARED_ENCODER_ID]

    def _forward(self, batch, **kwargs):
        fwd_out = {}
        for policy_id, policy_batch in batch.items():
            policy_batch = dict(policy_batch)
            policy_batch["encoder_embeddings"] = self.encoder._forward(policy_batch)["encoder_embeddings"]
            fwd_out[policy_id] = self._rl_modules[policy_id]._forward(policy_batch, **kwargs)
        return fwd_out


head = RLModuleSpec(VPGPolicyAfterSharedEncoder, OBS, ACT, model_config={"embedding_dim": 8, "hidden_dim": 16})
multi = MultiRLModuleSpec(multi_rl_module_class=VPGMultiRLModuleWithSharedEncoder, rl_module_specs={
    SHARED_ENCODER_ID: RLModuleSpec(SharedEncoder, observation_space=OBS, model_config={"embedding_dim": 8}),
    "p0": head, "p1": head}).build()
multi_params = multi.init(jax.random.key(0))
res = multi.forward_exploration(multi_params, {"p0": batch, "p1": batch}, jax.random.key(2))
jax.tree_util.tree_map(np.shape, multi_params[SHARED_ENCODER_ID]), res["p0"][Columns.ACTIONS]

# %% [markdown]
# ## A population of N identical policies: the stacked path
# A dict of N modules pays for every pytree leaf crossing the jit boundary. `multi.stacked(mids)`
# runs N identical modules over a leading module axis (`obs: [N, B, ...]`) as one vmapped call.
# The plot compares the cost per module with a Python loop of single modules.

# %%
def timed(fn, reps=20):
    jax.block_until_ready(fn())
    start = time.perf_counter()
    for _ in range(reps):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / reps * 1e6


sizes, stacked_cost, loop_cost = [1, 4, 16, 64], [], []
for n in sizes:
    mids = [f"p{i}" for i in range(n)]
    pop = MultiRLModuleSpec(rl_module_specs={m: spec for m in mids}).build()
    pop_params = pop.init(jax.random.key(n))
    group, stacked = pop.stacked(mids), pop.stack_params(pop_params, mids)
    obs_n = {Columns.OBS: np.zeros((n, 32, 4), np.float32)}
    single, single_batch = pop[mids[0]], {Columns.OBS: np.zeros((32, 4), np.float32)}
    stacked_cost.append(timed(lambda: group.forward_exploration(stacked, obs_n, jax.random.key(0))) / n)
    loop_cost.append(timed(lambda: [single.forward_exploration(pop_params[m], single_batch, jax.random.key(0))
                                    for m in mids], reps=5) / n)

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(sizes, stacked_cost, "o-", label="stacked (one vmapped call)")
ax.plot(sizes, loop_cost, "s--", label="loop of single modules")
ax.set_xscale("log", base=2)
ax.set_xlabel("N modules (B = 32 each)")
ax.set_ylabel("µs per module")
ax.legend()
fig.tight_layout()
