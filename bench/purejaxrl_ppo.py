"""A hand-written PureJaxRL-style PPO (the baseline of bench/ppo_cartpole.py).

Plain flax.linen + distrax + optax + gymnax, no jaxrl_modules import: separate actor and
critic MLPs [64, 64] tanh with orthogonal init, rollout and update as `lax.scan`s.
"""

from __future__ import annotations

from typing import NamedTuple

import distrax
import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax


class ActorCritic(nn.Module):
    action_dim: int

    @nn.compact
    def __call__(self, x):
        ortho = nn.initializers.orthogonal
        a = jnp.tanh(nn.Dense(64, kernel_init=ortho(np.sqrt(2)))(x))
        a = jnp.tanh(nn.Dense(64, kernel_init=ortho(np.sqrt(2)))(a))
        logits = nn.Dense(self.action_dim, kernel_init=ortho(0.01))(a)
        c = jnp.tanh(nn.Dense(64, kernel_init=ortho(np.sqrt(2)))(x))
        c = jnp.tanh(nn.Dense(64, kernel_init=ortho(np.sqrt(2)))(c))
        return distrax.Categorical(logits=logits), nn.Dense(1, kernel_init=ortho(1.0))(c)[..., 0]


class Transition(NamedTuple):
    done: jax.Array
    action: jax.Array
    value: jax.Array
    reward: jax.Array
    log_prob: jax.Array
    obs: jax.Array
    ended_return: jax.Array


def make_train(num_envs=4, num_steps=128, total_timesteps=500_000, update_epochs=4, num_minibatches=4, lr=2.5e-4,
               gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5):
    num_updates = total_timesteps // num_steps // num_envs
    minibatch_size = num_envs * num_steps // num_minibatches
    env, env_params = gymnax.make("CartPole-v1")
    network = ActorCritic(env.action_space(env_params).n)

    def schedule(count):
        return lr * (1.0 - (count // (num_minibatches * update_epochs)) / num_updates)

    tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(schedule, eps=1e-5))

    def train(rng):
        rng, k_init, k_reset = jax.random.split(rng, 3)
        params = network.init(k_init, jnp.zeros(env.observation_space(env_params).shape))
        opt_state = tx.init(params)
        obs, env_state = jax.vmap(env.reset, (0, None))(jax.random.split(k_reset, num_envs), env_params)

        def update(carry, _):
            params, opt_state, env_state, obs, ep_ret, rng = carry

            def step(c, _):
                env_state, obs, ep_ret, rng = c
                rng, k_act, k_env = jax.random.split(rng, 3)
                pi, value = network.apply(params, obs)
                action = pi.sample(seed=k_act)
                log_prob = pi.log_prob(action)
                obs2, env_state, reward, term, trunc, _ = jax.vmap(env.step, (0, 0, 0, None))(
                    jax.random.split(k_env, num_envs), env_state, action, env_params)
                done = term | trunc
                ret = ep_ret + reward
                t = Transition(done, action, value, reward, log_prob, obs, jnp.where(done, ret, 0.0))
                return (env_state, obs2, jnp.where(done, 0.0, ret), rng), t

            (env_state, obs, ep_ret, rng), traj = jax.lax.scan(step, (env_state, obs, ep_ret, rng), None, num_steps)
            _, last_val = network.apply(params, obs)

            def gae_step(c, t):
                gae, next_value = c
                delta = t.reward + gamma * next_value * (1 - t.done) - t.value
                gae = delta + gamma * gae_lambda * (1 - t.done) * gae
                return (gae, t.value), gae

            _, adv = jax.lax.scan(gae_step, (jnp.zeros_like(last_val), last_val), traj, reverse=True)
            targets = adv + traj.value

            def loss_fn(params, t, adv, targets):
                pi, value = network.apply(params, t.obs)
                log_prob = pi.log_prob(t.action)
                v_clipped = t.value + (value - t.value).clip(-clip_eps, clip_eps)
                v_loss = 0.5 * jnp.maximum((value - targets) ** 2, (v_clipped - targets) ** 2).mean()
                ratio = jnp.exp(log_prob - t.log_prob)
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                actor = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv).mean()
                return actor + vf_coef * v_loss - ent_coef * pi.entropy().mean()

            def epoch(c, _):
                params, opt_state, rng = c
                rng, k = jax.random.split(rng)
                batch = (traj, adv, targets)
                perm = jax.random.permutation(k, num_envs * num_steps)
                batch = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:])[perm], batch)
                mbs = jax.tree_util.tree_map(lambda x: x.reshape((num_minibatches, minibatch_size) + x.shape[1:]), batch)

                def mb_step(c, mb):
                    params, opt_state = c
                    grads = jax.grad(loss_fn)(params, *mb)
                    updates, opt_state = tx.update(grads, opt_state)
                    return (optax.apply_updates(params, updates), opt_state), None

                (params, opt_state), _ = jax.lax.scan(mb_step, (params, opt_state), mbs)
                return (params, opt_state, rng), None

            (params, opt_state, rng), _ = jax.lax.scan(epoch, (params, opt_state, rng), None, update_epochs)
            episodes = traj.done.sum()
            mean_ret = jnp.where(episodes > 0, traj.ended_return.sum() / jnp.maximum(episodes, 1), jnp.nan)
            return (params, opt_state, env_state, obs, ep_ret, rng), mean_ret

        carry = (params, opt_state, env_state, obs, jnp.zeros(num_envs), rng)
        (params, *_), returns = jax.lax.scan(update, carry, None, num_updates)
        return params, {"episode_return_mean": returns}

    return train, num_updates
