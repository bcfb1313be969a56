# %% [markdown]
# # 07 · DQN, SAC and BC
# The same module machinery under three more algorithms, each trained briefly: DQN and SAC fully
# inside `jax.jit` over gymnax envs, BC from transitions recorded by our own rollout of a policy.

# %%
import tempfile
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np

from jaxrl_modules.algorithms.bc import BCConfig, record_transitions
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.algorithms.sac import SACConfig


def smooth(x, k):
    x = np.asarray(x)
    return np.array([np.nanmean(x[i:i + k]) for i in range(0, len(x), k)])


dqn = (DQNConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=10, rollout_fragment_length=1)
       .rl_module(model_config={"fcnet_hiddens": [120, 84], "fcnet_activation": "relu"})
       .training(lr=2.5e-4, train_batch_size=128, epsilon=[(0, 1.0), (60000, 0.05)], dueling=False, td_error_loss_fn="mse",
                 num_steps_sampled_before_learning_starts=5000, target_network_update_freq=50, grad_clip=10.0,
                 replay_buffer_config={"capacity": 10000}))
_, dqn_metrics = jax.jit(dqn.build_train_fn(num_iterations=15000))(jax.random.key(0))
dqn_curve = smooth(dqn_metrics["episode_return_mean"], 500)

sac = (SACConfig().environment("gymnax:Pendulum-v1").env_runners(num_envs_per_env_runner=1, rollout_fragment_length=1)
       .rl_module(model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "relu"})
       .training(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, train_batch_size_per_learner=256,
                 num_steps_sampled_before_learning_starts=1000, replay_buffer_config={"capacity": 50000}))
_, sac_metrics = jax.jit(sac.build_train_fn(num_iterations=10000))(jax.random.key(0))
sac_curve = smooth(sac_metrics["episode_return_mean"], 500)
dqn_curve[-1].round(), sac_curve[-1].round()

# %% [markdown]
# ## Behaviour cloning
# Train a PPO expert in one jit, record 4000 transitions of it on gymnasium CartPole, clone them.

# %%
expert_train = (PPOConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=4, rollout_fragment_length=128)
                .rl_module(model_config={"fcnet_hiddens": [64, 64]})
                .training(lr=2.5e-4, lambda_=0.95, clip_param=0.2, entropy_coeff=0.01, vf_loss_coeff=0.5, grad_clip=0.5,
                          num_epochs=4, minibatch_size=128, train_batch_size_per_learner=512, use_kl_loss=False,
                          vf_clip_param=1e6)
                .build_train_fn(num_iterations=300))
expert_params, _ = jax.jit(expert_train)(jax.random.key(0))
data_dir = Path(tempfile.mkdtemp())
recording = record_transitions(expert_train.module, expert_params, "CartPole-v1", 4000, data_dir / "expert.npz")
bc = (BCConfig().environment("CartPole-v1").offline_data(input_=data_dir)
      .rl_module(model_config={"fcnet_hiddens": [64, 64]})
      .training(lr=1e-3, train_batch_size_per_learner=2000, minibatch_size=250, num_epochs=2)).build()
bc_losses = [bc.train()["learners"]["default_policy"]["policy_loss"] for _ in range(30)]
expert_return = np.mean(recording["episode_returns"])
cloned_return = bc.evaluate(episodes=5)["env_runners"]["episode_return_mean"]
expert_return, cloned_return

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3))
axes[0].plot(np.arange(len(dqn_curve)) * 500 * 10, dqn_curve)
axes[0].set_title("DQN, gymnax CartPole")
axes[0].set_xlabel("env steps")
axes[1].plot(np.arange(len(sac_curve)) * 500, sac_curve, color="C2")
axes[1].set_title("SAC, gymnax Pendulum")
axes[1].set_xlabel("env steps")
axes[2].plot(bc_losses, color="C3")
axes[2].set_title(f"BC loss (clone {cloned_return:.0f} vs expert {expert_return:.0f})")
axes[2].set_xlabel("train() calls")
axes[0].set_ylabel("episode return")
fig.tight_layout()
