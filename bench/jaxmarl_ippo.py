"""A hand-written JaxMARL-style IPPO (feed-forward, one actor-critic shared by all agents) on MPE simple spread.

Plain flax.linen + distrax + optax + jaxmarl, no jaxrl_modules import. It follows JaxMARL's own baseline
`baselines/IPPO/ippo_ff_mpe.py` and its `ippo_ff_mpe.yaml`: separate actor and critic MLPs [64, 64] tanh with
orthogonal init (sqrt(2), actor head 0.01, critic head 1.0), linearly annealed lr, clipped value loss, advantages
standardised per minibatch (as JaxMARL does in its loss), rollout and update as `lax.scan`s.

Agents are "batchified": every agent of every env is one row, `[num_envs * num_agents]` rows, the agents of one env
contiguous: row `env * num_agents + agent` (stack `{agent: [num_envs, ...]}` on axis=1 in `env.agents` order, then
flatten). JaxMARL itself stacks on axis=0 (row `agent * num_envs + env`); the row order changes nothing in the
algorithm, only which rows a given permutation key puts in a minibatch.
Each row's done is its agent's `done[agent]` and the GAE runs per row.

Metrics per iteration: `episode_return_mean` is the mean TEAM return (sum over agents of their rewards over the
episode) of the episodes that ended during the iteration's rollout, NaN if none; `num_env_steps` counts one
vectorised env step as `num_envs` steps (not times the agents); `total_loss` is the mean over epochs and
minibatches.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jaxmarl
import numpy as np
import optax

from purejaxrl_ppo import ActorCritic  # the same two-tower network: JaxMARL's IPPO is PureJaxRL's


class Transition(NamedTuple):
    done: jax.Array
    action: jax.Array
    value: jax.Array
    reward: jax.Array
    log_prob: jax.Array
    obs: jax.Array
    ended_return: jax.Array  # [num_envs]: the team return of an episode that ended at this step, else 0
    ended: jax.Array  # [num_envs]: done["__all__"]


def make_train(num_envs=8, num_steps=128, num_updates=100, update_epochs=4, num_minibatches=4, lr=2.5e-4,
               gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
               env_name="MPE_simple_spread_v3", split=False):
    """`train(rng) -> (params, metrics)`; with `split=True` its two halves `(init(rng) -> params,
    train_from(params, rng) -> (params, metrics))`, `train(rng) == train_from(init(k), rng)` for the
    `k` it splits off: a vmapped `train` whose program also holds the orthogonal init (a QR) stalled
    (every XLA thread asleep) in most runs on the 2-core CPU machine, so the 8-seed benchmark inits in a
    program of its own."""
    env = jaxmarl.make(env_name)
    agents = env.agents
    num_agents = env.num_agents
    num_actors = num_envs * num_agents
    minibatch_size = num_actors * num_steps // num_minibatches
    network = ActorCritic(env.action_space(agents[0]).n)

    def batchify(x):  # {agent: [num_envs, ...]} -> [num_envs * num_agents, ...], row env * num_agents + agent
        x = jnp.stack([x[a] for a in agents], axis=1)
        return x.reshape((num_actors,) + x.shape[2:])

    def unbatchify(x):  # [num_envs * num_agents, ...] -> {agent: [num_envs, ...]}
        x = x.reshape((num_envs, num_agents) + x.shape[1:])
        return {a: x[:, i] for i, a in enumerate(agents)}

    def schedule(count):
        return lr * (1.0 - (count // (num_minibatches * update_epochs)) / num_updates)

    tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(schedule, eps=1e-5))

    def init(rng):
        _, k_init, _ = jax.random.split(rng, 3)
        return network.init(k_init, jnp.zeros(env.observation_space(agents[0]).shape))

    def train(rng):
        return train_from(init(rng), rng)

    def train_from(params, rng):
        rng, _, k_reset = jax.random.split(rng, 3)
        opt_state = tx.init(params)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))

        def update(carry, _):
            params, opt_state, env_state, obs, ep_ret, rng = carry

            def step(c, _):
                env_state, obs, ep_ret, rng = c
                rng, k_act, k_env = jax.random.split(rng, 3)
                obs_b = batchify(obs)
                pi, value = network.apply(params, obs_b)
                action = pi.sample(seed=k_act)
                log_prob = pi.log_prob(action)
                obs2, env_state, reward, done, _ = jax.vmap(env.step)(
                    jax.random.split(k_env, num_envs), env_state, unbatchify(action))
                ended = done["__all__"]
                ret = ep_ret + sum(reward[a] for a in agents)  # team return, per env
                t = Transition(batchify(done), action, value, batchify(reward), log_prob, obs_b,
                               jnp.where(ended, ret, 0.0), ended)
                return (env_state, obs2, jnp.where(ended, 0.0, ret), rng), t

            (env_state, obs, ep_ret, rng), traj = jax.lax.scan(step, (env_state, obs, ep_ret, rng), None, num_steps)
            _, last_val = network.apply(params, batchify(obs))

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
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # JaxMARL's ippo_ff_mpe standardises per minibatch
                actor = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv).mean()
                return actor + vf_coef * v_loss - ent_coef * pi.entropy().mean()

            def epoch(c, _):
                params, opt_state, rng = c
                rng, k = jax.random.split(rng)
                batch = (traj._replace(ended_return=None, ended=None), adv, targets)
                perm = jax.random.permutation(k, num_actors * num_steps)
                batch = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:])[perm], batch)
                mbs = jax.tree_util.tree_map(lambda x: x.reshape((num_minibatches, minibatch_size) + x.shape[1:]), batch)

                def mb_step(c, mb):
                    params, opt_state = c
                    loss, grads = jax.value_and_grad(loss_fn)(params, *mb)
                    updates, opt_state = tx.update(grads, opt_state)
                    return (optax.apply_updates(params, updates), opt_state), loss

                (params, opt_state), losses = jax.lax.scan(mb_step, (params, opt_state), mbs)
                return (params, opt_state, rng), losses

            (params, opt_state, rng), losses = jax.lax.scan(epoch, (params, opt_state, rng), None, update_epochs)
            episodes = traj.ended.sum()
            mean_ret = jnp.where(episodes > 0, traj.ended_return.sum() / jnp.maximum(episodes, 1), jnp.nan)
            return (params, opt_state, env_state, obs, ep_ret, rng), {"episode_return_mean": mean_ret,
                                                                      "total_loss": losses.mean()}

        carry = (params, opt_state, env_state, obs, jnp.zeros(num_envs), rng)
        (params, *_), metrics = jax.lax.scan(update, carry, None, num_updates)
        metrics["num_env_steps"] = (jnp.arange(1, num_updates + 1) * num_steps * num_envs).astype(jnp.int32)
        return params, metrics

    return (init, train_from) if split else train


if __name__ == "__main__":
    import time

    num_envs, num_steps, num_updates = 8, 128, 20
    train = jax.jit(make_train(num_envs=num_envs, num_steps=num_steps, num_updates=num_updates))
    rng = jax.random.PRNGKey(0)
    t0 = time.perf_counter()
    compiled = train.lower(rng).compile()
    t1 = time.perf_counter()
    params, metrics = jax.block_until_ready(compiled(rng))
    t2 = time.perf_counter()
    rets = np.asarray(metrics["episode_return_mean"])
    steps = int(metrics["num_env_steps"][-1])
    print(f"compile {t1 - t0:.1f}s  run {t2 - t1:.1f}s  {steps / (t2 - t1):,.0f} env steps/s ({steps} env steps)")
    print("team returns first 5:", np.round(rets[:5], 1), " last 5:", np.round(rets[-5:], 1))
    print("total_loss first/last:", float(metrics["total_loss"][0]), float(metrics["total_loss"][-1]))
