# %% [markdown]
# # 05 · Training inside one `jax.jit`
# With a gymnax env (`"gymnax:CartPole-v1"`), `PPOConfig.build_train_fn(num_iterations)` returns a
# pure `train(rng) -> (params, metrics)`: rollout, GAE and the minibatch updates are `lax.scan`s over
# the same modules. `jax.jit` compiles it once; `jax.vmap` runs it for many seeds at once.

# %%
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

from jaxrl_modules.algorithms.ppo import PPOConfig

hyper = dict(lr=2.5e-4, lr_schedule="linear", lambda_=0.95, clip_param=0.2, entropy_coeff=0.01, vf_loss_coeff=0.5,
             grad_clip=0.5, num_epochs=4, minibatch_size=128, train_batch_size_per_learner=512, use_kl_loss=False,
             vf_clip_param=1e6)
model = {"fcnet_hiddens": [64, 64], "fcnet_kernel_initializer": "orthogonal", "fcnet_kernel_initializer_kwargs": {"scale": 1.414}}
config = (PPOConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=4, rollout_fragment_length=128)
          .rl_module(model_config=model).training(**hyper))
train = config.build_train_fn(num_iterations=200)
seeds = jax.random.split(jax.random.key(0), 8)
start = time.perf_counter()
train_many = jax.jit(jax.vmap(train)).lower(seeds).compile()
compile_s = time.perf_counter() - start
start = time.perf_counter()
params, metrics = jax.block_until_ready(train_many(seeds))
run_s = time.perf_counter() - start
steps = 8 * 200 * 512
print(f"compile {compile_s:.1f} s, run {run_s:.1f} s, {steps / run_s:,.0f} env steps/s over 8 seeds")

# %% [markdown]
# The params come back with a leading seed axis, one independently trained policy per seed, and the
# metrics with `[seed, iteration]` axes:

# %%
returns = np.asarray(metrics["episode_return_mean"])  # NaN where no episode ended in an iteration
env_steps = np.asarray(metrics["num_env_steps_sampled_lifetime"][0])
filled = np.array([[np.nanmean(r[max(0, i - 5):i + 1]) for i in range(len(r))] for r in returns])
params["pi"]["out"]["kernel"].shape, np.nanmean(returns[:, -20:], axis=1).round()

# %% [markdown]
# ## The same modules in the host loop
# `config.environment("CartPole-v1").build()` samples a gymnasium vector env with the jitted
# `forward_exploration` and runs the same jitted update. One curve beside the eight seeds:

# %%
host = (PPOConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=8)
        .rl_module(model_config={"fcnet_hiddens": [64, 64]})
        .training(lr=1e-3, lambda_=0.95, clip_param=0.2, vf_loss_coeff=0.5, grad_clip=0.5, num_epochs=6,
                  minibatch_size=256, train_batch_size_per_learner=1024, use_kl_loss=False, vf_clip_param=1e6)).build()
host_steps, host_returns = [], []
for _ in range(60):
    result = host.train()
    host_steps.append(result["num_env_steps_sampled_lifetime"])
    host_returns.append(result["env_runners"]["episode_return_mean"])

fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
mean, lo, hi = np.nanmean(filled, 0), np.nanmin(filled, 0), np.nanmax(filled, 0)
axes[0].fill_between(env_steps, lo, hi, alpha=0.25, label="min-max over 8 seeds")
axes[0].plot(env_steps, mean, label="mean of 8 seeds")
axes[0].set_title("all-in-jit (gymnax), vmapped seeds")
axes[1].plot(host_steps, host_returns, color="C1")
axes[1].set_title("host loop (gymnasium)")
for ax in axes:
    ax.set_xlabel("env steps")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("episode return")
axes[0].legend()
fig.tight_layout()
