"""One rule for seeds everywhere (`validation.seed_int`: an int in [0, 2**32 - 1], which JAX keys, numpy and
gymnasium's resets all take, seed + i included): the library's settings and evaluation functions refuse
others naming the setting, and `train --seed` / `--config seed=` name the flag in one line, exit code 2."""

import pytest

from jaxrl_modules.algorithms.env_runner import evaluate_policy
from jaxrl_modules.algorithms.jax_evaluate import evaluate_gymnax
from jaxrl_modules.algorithms.multi_agent_env_runner import evaluate_multi_agent
from jaxrl_modules.algorithms.multi_seed import MultiSeedAlgorithm
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.cli import main
from jaxrl_modules.validation import SEED_MAX

TINY = {"fcnet_hiddens": [8]}
EXPECTED = "must be an int in [0, 4294967295]"


def test_the_largest_seed_trains_and_evaluates():
    """Every consumer takes SEED_MAX: JAX keys, the vector env's reset (seed + env index), evaluation's seed + episode."""
    algo = (PPOConfig().environment("CartPole-v1").env_runners(num_envs_per_env_runner=2).debugging(seed=SEED_MAX)
            .rl_module(model_config=TINY).training(train_batch_size_per_learner=16, minibatch_size=16, num_epochs=1)).build()
    algo.train()
    returns = evaluate_policy(algo.config, algo.module, algo.get_params(), 2, seed=SEED_MAX)
    assert len(returns) == 2 and all(r >= 1 for r in returns)
    algo.stop()


@pytest.mark.parametrize("seed,exc", [(-1, ValueError), (SEED_MAX + 1, ValueError), (10**20, ValueError), ("0", TypeError)])
def test_evaluation_functions_refuse_a_seed_out_of_range(seed, exc):
    with pytest.raises(exc, match=r"seed must be an int in \[0, 4294967295\]; got " + repr(seed).replace("'", ".")):
        evaluate_policy(None, None, None, 2, seed=seed)  # checked before anything is built
    with pytest.raises(exc, match=r"seed must be an int in \[0, 4294967295\]"):
        evaluate_gymnax(None, None, None, None, 2, seed=seed)
    with pytest.raises(exc, match=r"seed must be an int in \[0, 4294967295\]"):
        evaluate_multi_agent(None, None, None, [], 2, seed=seed)


def test_multi_seed_refuses_seeds_past_the_largest():
    config = PPOConfig().environment("gymnax:CartPole-v1").debugging(seed=SEED_MAX - 1)
    with pytest.raises(ValueError, match=r"seed \+ num_seeds - 1 .* must be <= 4294967295.*seed=4294967294 and num_seeds "
                                         r"\(--num-seeds\) 3"):
        MultiSeedAlgorithm(config, 3)  # refused before anything is built


def _bad_train(argv, tmp_path, capsys, *fragments):
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["train", "--runs-dir", str(tmp_path / "runs"), "--quiet", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("jaxrl-modules: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run folder


def test_train_names_the_seed_flag(tmp_path, capsys):
    _bad_train(["--seed", "99999999999999999999"], tmp_path, capsys, f"--seed {EXPECTED}; got 99999999999999999999")
    _bad_train(["--seed", "-1"], tmp_path, capsys, f"--seed {EXPECTED}; got -1")
    _bad_train(["--config", "seed=4294967296"], tmp_path, capsys, f"--config seed {EXPECTED}; got 4294967296")
    _bad_train(["--config", "seed='1'"], tmp_path, capsys, f"--config seed {EXPECTED}; got '1' (str)")
    _bad_train(["--env", "gymnax:CartPole-v1", "--num-seeds", "3", "--seed", str(SEED_MAX - 1)], tmp_path, capsys,
               "--seed 4294967294 with --num-seeds 3 trains seeds 4294967294 .. 4294967296",
               "expected the last to be <= 4294967295")
