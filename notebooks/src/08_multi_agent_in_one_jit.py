# %% [markdown]
# # 08 · Multi-agent experiments in one `jax.jit` (JaxMARL)
# A `"jaxmarl:<name>"` env (any `jaxmarl.make` name; `env_config` holds its keyword arguments) trains
# fully inside one jit: every agent of every env is a row of one batch, the agents act through the
# policies `multi_agent()` maps them to, and `train(rng) -> (params, metrics)` vmaps over seeds.
# Here: MPE simple spread (3 agents cover 3 landmarks) with
# - one shared policy (no `multi_agent()`: every agent maps to `default_policy`, JaxMARL's IPPO),
# - three per-agent policies (identical, so they act and learn stacked: one vmapped update),
# - MAPPO: the shared policy with a centralised critic reading all agents' observations,
#
# eight seeds each, vmapped.

# %%
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.algorithms.ppo.mappo import MAPPOModule
from jaxrl_modules.rl_module_spec import RLModuleSpec

ENVS, STEPS, ITERATIONS, SEEDS = 8, 128, 50, 8
model = {"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh", "vf_share_layers": False,
         "fcnet_kernel_initializer": "orthogonal", "fcnet_kernel_initializer_kwargs": {"scale": 1.414}}
ippo = (PPOConfig().environment("jaxmarl:MPE_simple_spread_v3")
        .env_runners(num_envs_per_env_runner=ENVS, rollout_fragment_length=STEPS)
        .rl_module(model_config=model)
        .training(lr=2.5e-4, lr_schedule="linear", lambda_=0.95, clip_param=0.2, entropy_coeff=0.01,
                  vf_loss_coeff=0.5, grad_clip=0.5, num_epochs=4, minibatch_size=ENVS * STEPS * 3 // 4,
                  train_batch_size_per_learner=ENVS * STEPS, use_kl_loss=False, vf_clip_param=1e6))
configs = {
    "shared policy (IPPO)": ippo,
    # each policy learns on its own agent's rows: a third of the shared policy's, so minibatches a third as large
    "3 per-agent policies, stacked": ippo.copy().multi_agent(policies={"agent_0", "agent_1", "agent_2"},
                                                      policy_mapping_fn=lambda agent_id, episode, **kw: agent_id
                                                      ).training(minibatch_size=ENVS * STEPS // 4),
    "MAPPO (centralised critic)": ippo.copy().rl_module(rl_module_spec=RLModuleSpec(module_class=MAPPOModule)),
}
seeds = jax.random.split(jax.random.key(0), SEEDS)
runs, summary = {}, {}
for name, config in configs.items():
    start = time.perf_counter()
    params, metrics = jax.block_until_ready(jax.jit(jax.vmap(config.build_train_fn(ITERATIONS)))(seeds))
    runs[name] = (params, metrics)
    summary[name] = f"{time.perf_counter() - start:.1f} s with compile, params {sorted(params)}"
summary

# %% [markdown]
# The params are `{module_id: params}` with a leading seed axis; the metrics have `[seed, iteration]` axes
# and hold the team return (`episode_return_mean`: the sum of all agents' rewards over an episode) and
# each module's (`module_episode_return_mean/<module_id>`: the sum over the agents mapped to it).

# %%
params, metrics = runs["3 per-agent policies, stacked"]
print(params["agent_0"]["pi"]["out"]["kernel"].shape)
print({k: np.asarray(v).shape for k, v in metrics.items() if "return" in k})

# %% [markdown]
# Team-return curves, mean over 8 seeds with the min-max spread:

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for name, (_, metrics) in runs.items():
    returns = np.asarray(metrics["episode_return_mean"])
    steps = np.asarray(metrics["num_env_steps_sampled_lifetime"][0])
    ax.fill_between(steps, returns.min(0), returns.max(0), alpha=0.2)
    ax.plot(steps, returns.mean(0), label=name)
ax.set_xlabel("env steps")
ax.set_ylabel("team episode return")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Throughput against the number of seeds
# One compiled program runs every seed; env steps/s (after compile) for 1, 2, 4 and 8 vmapped seeds of
# the shared policy, 5 iterations each (the fastest of 3 runs):

# %%
counts, rates = [1, 2, 4, 8], []
train = ippo.build_train_fn(5)
for n in counts:
    keys = jax.random.split(jax.random.key(1), n)
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    times = []
    for _ in range(3):  # the fastest of 3 runs: short runs on a shared machine are noisy
        start = time.perf_counter()
        jax.block_until_ready(compiled(keys))
        times.append(time.perf_counter() - start)
    rates.append(n * 5 * ENVS * STEPS / min(times))
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(counts, rates, marker="o")
ax.set_xlabel("vmapped seeds")
ax.set_ylabel("env steps / s")
ax.set_xticks(counts)
ax.grid(alpha=0.3)
fig.tight_layout()
dict(zip(counts, np.round(rates)))
