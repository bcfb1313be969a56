"""Every learner reports RLlib's `gradients_default_optimizer_global_norm` and (one optimizer)
`default_optimizer_learning_rate`: the rate the update applied, following `lr_schedule`."""

import math

import pytest

from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.optim import GRAD_NORM, LEARNING_RATE
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.envs import MultiAgentCartPole

TINY = {"fcnet_hiddens": [8]}
SMALL = dict(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1)


@pytest.mark.parametrize("env", ["CartPole-v1", "gymnax:CartPole-v1"])
def test_ppo_reports_the_scheduled_learning_rate_and_grad_norm(env):
    algo = (PPOConfig().environment(env).env_runners(num_envs_per_env_runner=2).rl_module(model_config=TINY)
            .training(lr=1e-2, lr_schedule="linear", total_iterations=4, **SMALL)).build()
    metrics = [algo.train()["learners"]["default_policy"] for _ in range(3)]
    # the last update of iteration i (0-based) uses lr * (1 - i / 4)
    assert [m[LEARNING_RATE] for m in metrics] == pytest.approx([1e-2, 7.5e-3, 5e-3])
    assert all(math.isfinite(m[GRAD_NORM]) and m[GRAD_NORM] > 0 for m in metrics)


def test_multi_agent_ppo_reports_them_per_module():
    algo = (PPOConfig().environment(MultiAgentCartPole, env_config={"num_agents": 2})
            .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, *a, **k: f"p{agent_id}")
            .rl_module(model_config=TINY).training(lr=3e-3, **SMALL)).build()
    learners = algo.train()["learners"]
    assert sorted(learners) == ["p0", "p1"]
    for mid in ("p0", "p1"):
        assert learners[mid][LEARNING_RATE] == pytest.approx(3e-3) and learners[mid][GRAD_NORM] > 0


def test_dqn_reports_them_once_learning_starts():
    algo = (DQNConfig().environment("CartPole-v1").rl_module(model_config=TINY)
            .training(lr=5e-4, num_steps_sampled_before_learning_starts=10)).build()
    metrics = algo.train()["learners"]["default_policy"]
    assert metrics[LEARNING_RATE] == pytest.approx(5e-4) and metrics[GRAD_NORM] > 0


@pytest.mark.parametrize("loss, norm, expected", [(float("nan"), float("nan"), "policy_loss"),
                                                  (1.0, float("nan"), GRAD_NORM), (1.0, 2.0, None)])
def test_a_nonfinite_loss_is_named_before_the_grad_norm_it_causes(loss, norm, expected):
    import jax.numpy as jnp

    from jaxrl_modules.algorithms.nonfinite import first_nonfinite, nonfinite_code, quantity_names

    tree = {"metrics": {GRAD_NORM: jnp.float32(norm), LEARNING_RATE: jnp.float32(1e-3), "policy_loss": jnp.float32(loss)},
            "params": {"w": jnp.ones(2)}}
    code = int(nonfinite_code(tree))
    assert (quantity_names(tree)[code] if code >= 0 else None) == expected
    assert first_nonfinite(tree) == (expected is not None, expected)
