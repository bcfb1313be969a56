"""Run by tests/test_data_parallel.py in a subprocess with emulated CPU devices (XLA_FLAGS set before
jax is imported): each learner's update on one fixed global batch, with 1 learner and with N, and the
largest difference between the resulting states. Prints one JSON line."""

from __future__ import annotations

import json
import sys

import gymnasium as gym
import jax
import numpy as np

from jaxrl_modules.algorithms.bc import BCConfig
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.multi_agent_spec import multi_spec
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.algorithms.ppo.stacked_learner import make_ppo_learner
from jaxrl_modules.algorithms.sac import SACConfig
from learner_batches import fixed_batch

B = 64  # the global batch
TINY = {"fcnet_hiddens": [8]}
CARTPOLE = (gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), gym.spaces.Discrete(2))
PENDULUM = (gym.spaces.Box(-8.0, 8.0, (3,), np.float32), gym.spaces.Box(-2.0, 2.0, (1,), np.float32))


def batch(algo: str) -> dict:
    return fixed_batch(algo, B)


def config(algo: str, n: int):
    """Same global batch and global minibatch for every n: per learner B / n rows, minibatches of B / 2n."""
    per = dict(train_batch_size_per_learner=B // n)
    if algo in ("PPO", "STACKED", "BC"):
        per.update(minibatch_size=B // (2 * n), num_epochs=2, lr=1e-2)
    cls = {"PPO": PPOConfig, "STACKED": PPOConfig, "DQN": DQNConfig, "SAC": SACConfig, "BC": BCConfig}[algo]
    cfg = cls().rl_module(model_config=TINY).training(**per).learners(num_learners=n)
    if algo == "STACKED":
        cfg = cfg.multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, *a, **kw: agent_id)
    cfg.validate()
    return cfg


def outcome(algo: str, n: int) -> tuple:
    """The learner state after 3 jitted updates on the fixed batch, and how its params are placed."""
    cfg = config(algo, n)
    spaces = PENDULUM if algo == "SAC" else CARTPOLE
    if algo == "STACKED":
        module = multi_spec(cfg, *spaces).build()
        learner = make_ppo_learner(module, cfg)
        data = {"p0": batch("PPO"), "p1": {k: x[::-1].copy() for k, x in batch("PPO").items()}}
    else:
        module = cfg.module_spec_for(*spaces).build()
        learner = cfg.get_default_learner_class()(module, cfg)
        data = batch(algo)
    state = learner.init(module.init_fn(jax.random.key(0)))
    initial = jax.device_get(state.params)
    update = jax.jit(learner.update)
    hlo = update.lower(state, data, jax.random.key(1)).compile().as_text()
    for i in range(3):
        state, _ = update(state, data, jax.random.key(i + 1))
    leaf = jax.tree_util.tree_leaves(state.params)[0]
    moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(jax.tree_util.tree_leaves(initial), jax.tree_util.tree_leaves(jax.device_get(state.params))))
    placement = {"devices": len(leaf.sharding.device_set), "replicated": bool(leaf.sharding.is_fully_replicated),
                 "all_reduce": "all-reduce" in hlo, "params_moved": moved}
    return jax.device_get(state), placement, type(learner).__name__


def main() -> None:
    if sys.argv[1] == "solve":
        return solve(int(sys.argv[2]), int(sys.argv[3]))
    if sys.argv[1] == "errors":
        return errors(int(sys.argv[2]))
    n = int(sys.argv[1])
    out = {"device_count": jax.device_count()}
    for algo in sys.argv[2:]:
        one, _, _ = outcome(algo, 1)
        many, placement, learner = outcome(algo, n)
        diffs = [float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                 for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(many))
                 if np.issubdtype(np.asarray(a).dtype, np.floating)]
        out[algo] = {"max_diff": max(diffs), "leaves": len(diffs), "learner": learner, **placement}
    print(json.dumps(out))


def solve(n: int, iterations: int) -> None:
    """All-in-jit PPO on gymnax CartPole with 1 learner and with n (same global batch): returns per iteration."""
    from ppo_configs import FAST, ORTHOGONAL_64

    out = {}
    for learners in (1, n):
        cfg = (PPOConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=8, rollout_fragment_length=128)
               .rl_module(model_config=ORTHOGONAL_64).learners(num_learners=learners)
               .training(**{**FAST, "train_batch_size_per_learner": 1024 // learners, "minibatch_size": 256 // learners}))
        params, metrics = jax.jit(cfg.build_train_fn(iterations))(jax.random.key(0))
        leaf = jax.tree_util.tree_leaves(params)[0]
        out[str(learners)] = {"returns": np.asarray(metrics["episode_return_mean"]).tolist(),
                              "env_steps": int(np.asarray(metrics["num_env_steps_sampled_lifetime"])[-1]),
                              "devices": len(leaf.sharding.device_set)}
    print(json.dumps(out))


def vmapped_seeds(n: int) -> int:
    """0 when build_train_fn with n learners vmaps over 2 seeds into 2 different runs."""
    cfg = (PPOConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=n, rollout_fragment_length=8)
           .rl_module(model_config=TINY).training(train_batch_size_per_learner=8, minibatch_size=4, num_epochs=1)
           .learners(num_learners=n))
    params, _ = jax.jit(jax.vmap(cfg.build_train_fn(2)))(jax.random.split(jax.random.key(0), 2))
    kernel = np.asarray(jax.tree_util.tree_leaves(params)[0])
    return 0 if kernel.shape[0] == 2 and not np.allclose(kernel[0], kernel[1]) else 1


def errors(n: int) -> None:
    """The messages of settings that cannot split over n learners."""
    out = {}
    cfg = PPOConfig().environment("gymnax:CartPole-v1").env_runners(num_envs_per_env_runner=n + 1).learners(num_learners=n)
    for name, build in [("num_envs", lambda: cfg.build_train_fn(1)),
                        ("too_many", lambda: PPOConfig().learners(num_learners=2 * n).build_train_fn(1)),
                        ("host_envs", lambda: PPOConfig().environment("CartPole-v1").env_runners(
                            num_envs_per_env_runner=n + 1).learners(num_learners=n).build()),
                        # 4000 rows in minibatches of 128 x n: 7 of 571 rows, rounded down to 568 to split evenly
                        ("uneven_minibatches", lambda: PPOConfig().environment("gymnax:CartPole-v1").env_runners(
                            num_envs_per_env_runner=8).rl_module(model_config=TINY).training(
                            train_batch_size_per_learner=4000 // n, minibatch_size=128, num_epochs=1).learners(
                            num_learners=n).build().train()["learners"]["default_policy"]["total_loss"] * 0),
                        ("vmapped_seeds", lambda: vmapped_seeds(n))]:
        try:
            got = build()
            out[name] = None if got is None or got == 0 else repr(got)
        except (TypeError, ValueError) as err:
            out[name] = f"{type(err).__name__}: {err}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
