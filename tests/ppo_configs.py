"""Hyper-parameters shared by the PPO tests (fast, decisive learning on CartPole)."""

from jaxrl_modules.algorithms.ppo import PPOConfig

FAST = dict(lr=1e-3, lambda_=0.95, clip_param=0.2, vf_loss_coeff=0.5, grad_clip=0.5, num_epochs=6,
            minibatch_size=256, train_batch_size_per_learner=1024, use_kl_loss=False, vf_clip_param=1e6)

PUREJAXRL = dict(lr=2.5e-4, lr_schedule="linear", gamma=0.99, lambda_=0.95, clip_param=0.2, entropy_coeff=0.01,
                 vf_loss_coeff=0.5, grad_clip=0.5, num_epochs=4, minibatch_size=128, train_batch_size_per_learner=512,
                 use_kl_loss=False, vf_clip_param=1e6)

ORTHOGONAL_64 = {"fcnet_hiddens": [64, 64], "fcnet_kernel_initializer": "orthogonal",
                 "fcnet_kernel_initializer_kwargs": {"scale": 1.414}}


def gymnax_cartpole(**training) -> PPOConfig:
    return (PPOConfig().environment("gymnax:CartPole-v1")
            .env_runners(num_envs_per_env_runner=4, rollout_fragment_length=128)
            .rl_module(model_config=ORTHOGONAL_64).training(**{**PUREJAXRL, **training}))
