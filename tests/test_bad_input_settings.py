"""Bad-input matrix for settings (issue 9, points 8-10): every config setting and every
DefaultModelConfig field is checked by value when set and again at build, each error naming
the setting, what it accepts and the value received; unusual-but-valid values are accepted."""

import math

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxrl_modules import DefaultModelConfig, RLModuleSpec
from jaxrl_modules.algorithms.bc import BCConfig
from jaxrl_modules.algorithms.dqn import DQNConfig
from jaxrl_modules.algorithms.optim import adam_with_clip, learning_rate, linear_lr_schedule
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule, PPOConfig
from jaxrl_modules.algorithms.replay_buffer import parse_replay_buffer_config
from jaxrl_modules.algorithms.sac import SACConfig
from jaxrl_modules.model_config import get_activation_fn

from conftest import CARTPOLE_ACT, CARTPOLE_OBS, raises_naming

VE, TE = ValueError, TypeError
CONFIGS = {"PPO": PPOConfig, "DQN": DQNConfig, "SAC": SACConfig, "BC": BCConfig}


def case(algo, method, key, value, exc, expected, *extra):
    """One setter call `Config().<method>(key=value)` that must raise `exc` naming key, expected, value."""
    return pytest.param(algo, method, key, value, exc, (key, expected, repr(value), *extra),
                        id=f"{algo}.{method}({key}={value!r})")


def every(method, key, value, exc, expected, algos=("PPO", "DQN", "SAC", "BC")):
    return [case(a, method, key, value, exc, expected) for a in algos]


SETTER_CASES = [
    # AlgorithmConfig.training, for every algorithm
    *every("training", "gamma", -0.1, VE, "[0, 1]"),
    *every("training", "gamma", 1.5, VE, "[0, 1]"),
    *every("training", "gamma", "0.99", TE, "[0, 1]"),
    case("PPO", "training", "gamma", float("nan"), VE, "finite"),
    case("DQN", "training", "gamma", True, TE, "[0, 1]"),
    *every("training", "lr", 0, VE, "> 0", algos=("PPO", "DQN", "BC")),
    case("PPO", "training", "lr", -1e-3, VE, "> 0"),
    case("PPO", "training", "lr", "1e-3", TE, "> 0"),
    case("DQN", "training", "lr", float("inf"), VE, "finite"),
    case("BC", "training", "lr", None, TE, "> 0"),
    case("SAC", "training", "lr", 1e-3, VE, "actor_lr, critic_lr and alpha_lr"),
    *every("training", "train_batch_size", 0, VE, ">= 1", algos=("PPO", "DQN")),
    case("PPO", "training", "train_batch_size", 32.0, TE, "an int >= 1"),
    case("DQN", "training", "train_batch_size", True, TE, "an int >= 1"),
    case("SAC", "training", "train_batch_size_per_learner", 0, VE, "None or an int >= 1"),
    case("BC", "training", "train_batch_size_per_learner", "128", TE, "None or an int >= 1"),
    case("PPO", "training", "grad_clip", 0, VE, "None or a finite number > 0"),
    case("DQN", "training", "grad_clip", -40.0, VE, "None or a finite number > 0"),
    case("SAC", "training", "grad_clip", "40", TE, "None or a finite number > 0"),
    case("PPO", "training", "grad_clip_by", "global", VE, "['value', 'norm', 'global_norm']"),
    case("DQN", "training", "grad_clip_by", 1, TE, "['value', 'norm', 'global_norm']"),
    case("PPO", "training", "adam_eps", 0.0, VE, "> 0"),
    case("BC", "training", "adam_eps", -1e-8, VE, "> 0"),
    case("PPO", "training", "total_iterations", 0, VE, "None or an int >= 1"),
    case("PPO", "training", "total_iterations", 2.5, TE, "None or an int >= 1"),
    case("PPO", "training", "lr_schedule", "cosine", VE, "'linear'"),
    case("DQN", "training", "lr_schedule", "linear", VE, "PPO only"),
    case("SAC", "training", "lr_schedule", "linear", VE, "PPO only"),
    case("BC", "training", "lr_schedule", "linear", VE, "PPO only"),
    # env_runners / debugging / evaluation / environment / rl_module / multi_agent
    case("PPO", "env_runners", "num_envs_per_env_runner", 0, VE, "an int >= 1"),
    case("DQN", "env_runners", "num_envs_per_env_runner", "4", TE, "an int >= 1"),
    case("SAC", "env_runners", "num_envs_per_env_runner", 2.0, TE, "an int >= 1"),
    case("PPO", "env_runners", "rollout_fragment_length", 0, VE, "'auto' or an int >= 1"),
    case("DQN", "env_runners", "rollout_fragment_length", "full", TE, "'auto' or an int >= 1"),
    case("PPO", "env_runners", "env_to_module_connector", 3, TE, "None or a callable"),
    case("PPO", "env_runners", "num_env_runners", -1, VE, "an int >= 0"),
    case("PPO", "debugging", "seed", -1, VE, "an int in [0, 4294967295]"),
    case("PPO", "debugging", "seed", 2**32, VE, "an int in [0, 4294967295]"),
    case("DQN", "debugging", "seed", "1", TE, "an int in [0, 4294967295]"),
    case("BC", "debugging", "seed", 1.5, TE, "an int in [0, 4294967295]"),
    case("PPO", "evaluation", "evaluation_duration", 0, VE, "an int >= 1"),
    case("SAC", "evaluation", "evaluation_duration", "10", TE, "an int >= 1"),
    case("PPO", "environment", "env_config", "abc", TE, "a dict"),
    case("PPO", "rl_module", "model_config", [64, 64], TE, "a dict or DefaultModelConfig"),
    case("DQN", "rl_module", "rl_module_spec", "spec", TE, "RLModuleSpec"),
    case("PPO", "multi_agent", "policies", "p0", TE, "policy (module) ids"),
    case("PPO", "multi_agent", "policies", [1, 2], TE, "policy (module) ids"),
    case("PPO", "multi_agent", "policies", set(), VE, "not empty"),
    case("PPO", "multi_agent", "policy_mapping_fn", 3, TE, "None or a callable"),
    case("PPO", "multi_agent", "policies_to_train", 3, TE, "a non-empty collection"),
    case("PPO", "multi_agent", "policies_to_train", set(), VE, "not empty"),
    # PPO
    case("PPO", "training", "lambda_", -0.1, VE, "[0, 1]"),
    case("PPO", "training", "lambda_", 1.01, VE, "[0, 1]"),
    case("PPO", "training", "lambda_", "0.95", TE, "[0, 1]"),
    case("PPO", "training", "use_gae", False, VE, "True"),
    case("PPO", "training", "use_gae", "False", TE, "True"),
    case("PPO", "training", "use_critic", False, VE, "True"),
    case("PPO", "training", "clip_param", 0, VE, "> 0"),
    case("PPO", "training", "clip_param", -0.2, VE, "> 0"),
    case("PPO", "training", "vf_clip_param", 0.0, VE, "> 0"),
    case("PPO", "training", "vf_loss_coeff", -1.0, VE, ">= 0"),
    case("PPO", "training", "entropy_coeff", -0.01, VE, ">= 0"),
    case("PPO", "training", "entropy_coeff", "0.01", TE, ">= 0"),
    case("PPO", "training", "use_kl_loss", "True", TE, "a bool"),
    case("PPO", "training", "kl_coeff", -0.1, VE, ">= 0"),
    case("PPO", "training", "kl_target", 0, VE, "> 0"),
    case("PPO", "training", "num_epochs", 0, VE, "an int >= 1"),
    case("PPO", "training", "num_epochs", 1.5, TE, "an int >= 1"),
    case("PPO", "training", "minibatch_size", 0, VE, "an int >= 1"),
    case("PPO", "training", "shuffle_batch_per_epoch", 1, TE, "a bool"),
    # DQN
    case("DQN", "training", "double_q", "yes", TE, "a bool"),
    case("DQN", "training", "dueling", 0, TE, "a bool"),
    case("DQN", "training", "n_step", 0, VE, "an int >= 1"),
    case("DQN", "training", "n_step", 2.0, TE, "an int >= 1"),
    case("DQN", "training", "epsilon", -0.1, VE, "[0, 1]"),
    case("DQN", "training", "epsilon", "0.1", TE, "schedule"),
    case("DQN", "training", "epsilon", [], VE, "schedule"),
    case("DQN", "training", "target_network_update_freq", 0, VE, "an int >= 1"),
    case("DQN", "training", "tau", 0, VE, "(0, 1]"),
    case("DQN", "training", "tau", 1.5, VE, "(0, 1]"),
    case("DQN", "training", "td_error_loss_fn", "l2", VE, "['huber', 'mse']"),
    case("DQN", "training", "training_intensity", 1.0, VE, "not implemented"),
    case("DQN", "training", "num_steps_sampled_before_learning_starts", -1, VE, "an int >= 0"),
    case("DQN", "training", "replay_buffer_config", "big", TE, "a dict"),
    # SAC
    case("SAC", "training", "tau", 0.0, VE, "(0, 1]"),
    case("SAC", "training", "initial_alpha", 0, VE, "> 0"),
    case("SAC", "training", "initial_alpha", -1.0, VE, "> 0"),
    case("SAC", "training", "actor_lr", 0, VE, "> 0"),
    case("SAC", "training", "critic_lr", "3e-4", TE, "> 0"),
    case("SAC", "training", "alpha_lr", -1.0, VE, "> 0"),
    case("SAC", "training", "target_entropy", "automatic", TE, "'auto' or a finite number"),
    case("SAC", "training", "target_entropy", float("nan"), VE, "finite"),
    case("SAC", "training", "twin_q", "True", TE, "a bool"),
    case("SAC", "training", "n_step", 3, VE, "1 (n_step > 1 is not supported"),
    case("SAC", "training", "target_network_update_freq", -1, VE, "an int >= 0"),
    case("SAC", "training", "num_steps_sampled_before_learning_starts", 1.5, TE, "an int >= 0"),
    # BC
    case("BC", "training", "minibatch_size", 0, VE, "an int >= 1"),
    case("BC", "training", "num_epochs", 0, VE, "an int >= 1"),
    case("BC", "offline_data", "input_", 3, TE, "a path"),
]


@pytest.mark.parametrize("algo,method,key,value,exc,fragments", SETTER_CASES)
def test_setter_rejects_bad_value(algo, method, key, value, exc, fragments):
    config = CONFIGS[algo]()
    raises_naming(exc, lambda: getattr(config, method)(**{key: value}), *fragments)


EPSILON_CASES = [
    ([(0, 1.5)], VE, ("epsilon[0] v", "[0, 1]", "1.5")),
    ([(10, 1.0), (5, 0.1)], VE, ("epsilon[1] t", "greater than the previous t=10", "5")),
    ([(-1, 1.0)], VE, ("epsilon[0] t", ">= 0", "-1")),
    ([(0,)], TE, ("epsilon[0]", "(t, v) pair", "(0,)")),
    ([(0, "1.0")], TE, ("epsilon[0] v", "[0, 1]", "'1.0'")),
]


@pytest.mark.parametrize("value,exc,fragments", EPSILON_CASES, ids=[repr(c[0]) for c in EPSILON_CASES])
def test_epsilon_schedule_points_are_checked(value, exc, fragments):
    raises_naming(exc, lambda: DQNConfig().training(epsilon=value), *fragments)


REPLAY_CASES = [
    ({"type": "PrioritizedEpisodeReplayBuffer"}, VE,
     ("replay_buffer_config['type']", "uniform", "PrioritizedEpisodeReplayBuffer")),
    ({"capacty": 10000}, VE, ("capacty", "did you mean 'capacity'", "['type', 'capacity']")),
    ({"alpha": 0.6}, VE, ("alpha", "prioritized replay is not supported", "['type', 'capacity']")),
    ({"capacity": 0}, VE, ("replay_buffer_config['capacity']", "an int >= 1", "0")),
    ({"capacity": "1e6"}, TE, ("replay_buffer_config['capacity']", "an int >= 1", "'1e6'")),
    ({"type": 3}, TE, ("replay_buffer_config['type']", "ReplayBuffer", "3")),
]


@pytest.mark.parametrize("algo", ["DQN", "SAC"])
@pytest.mark.parametrize("value,exc,fragments", REPLAY_CASES, ids=[repr(c[0]) for c in REPLAY_CASES])
def test_replay_buffer_config_is_checked(algo, value, exc, fragments):
    raises_naming(exc, lambda: CONFIGS[algo]().training(replay_buffer_config=value), *fragments)


# Assigned directly (bypassing the setters): build() and build_train_fn() check again.
ASSIGNED_CASES = [
    ("PPO", "gamma", 2.0, VE, "[0, 1]"),
    ("PPO", "clip_param", -1.0, VE, "> 0"),
    ("PPO", "use_kl_loss", "False", TE, "a bool"),
    ("PPO", "num_envs_per_env_runner", 0, VE, "an int >= 1"),
    ("PPO", "rollout_fragment_length", -5, VE, "'auto' or an int >= 1"),
    ("DQN", "tau", 2.0, VE, "(0, 1]"),
    ("DQN", "epsilon", [(0, 2.0)], VE, "[0, 1]", "2.0"),
    ("DQN", "replay_buffer_config", {"type": "PrioritizedEpisodeReplayBuffer", "capacity": 100}, VE, "uniform",
     "'PrioritizedEpisodeReplayBuffer'"),
    ("SAC", "initial_alpha", 0.0, VE, "> 0"),
    ("SAC", "seed", -3, VE, "an int in [0, 4294967295]"),
    ("PPO", "seed", 99999999999999999999, VE, "an int in [0, 4294967295]"),
    ("BC", "lr", 0.0, VE, "> 0"),
    ("BC", "num_epochs", True, TE, "an int >= 1"),
]


@pytest.mark.parametrize("algo,key,value,exc,expected,received", [c if len(c) == 6 else (*c, repr(c[2])) for c in ASSIGNED_CASES],
                         ids=[f"{c[0]}.{c[1]}={c[2]!r}" for c in ASSIGNED_CASES])
def test_build_checks_assigned_values(algo, key, value, exc, expected, received):
    config = CONFIGS[algo]().environment("CartPole-v1")
    setattr(config, key, value)
    raises_naming(exc, config.build, key, expected, received)


@pytest.mark.parametrize("algo", ["PPO", "DQN"])
def test_build_train_fn_checks_assigned_values(algo):
    config = CONFIGS[algo]().environment("gymnax:CartPole-v1")
    config.gamma = -1.0
    raises_naming(VE, lambda: config.build_train_fn(10), "gamma", "[0, 1]", "-1.0")
    config.gamma = 0.99
    raises_naming(VE, lambda: config.build_train_fn(0), "num_iterations", "an int >= 1", "0")


@pytest.mark.parametrize("algo", ["PPO", "DQN"])
@pytest.mark.parametrize("rng,exc,received", [(0, TE, "int 0"), (None, TE, "none"), (jnp.zeros(2), TE, "float32")],
                         ids=["int", "None", "float_array"])
def test_build_train_fn_checks_its_rng(algo, rng, exc, received):
    config = CONFIGS[algo]().environment("gymnax:CartPole-v1").rl_module(model_config={"fcnet_hiddens": [4]})
    train = config.build_train_fn(1)
    raises_naming(exc, lambda: train(rng), "train(rng)", "jax.random.key(seed)" if rng is not None else "needs an rng",
                  received)


BUILD_CASES = [
    pytest.param(lambda: PPOConfig().training(train_batch_size_per_learner=256, minibatch_size=512),
                 VE, ("minibatch_size", "[1, 256]", "512"), id="PPO minibatch > batch"),
    pytest.param(lambda: BCConfig().training(train_batch_size_per_learner=100, minibatch_size=256),
                 VE, ("minibatch_size", "[1, 100]", "256"), id="BC minibatch > batch"),
    pytest.param(lambda: DQNConfig().training(replay_buffer_config={"capacity": 16}),
                 VE, ("replay_buffer_config['capacity']", ">= the train batch size (32)", "16"), id="DQN capacity < batch"),
    pytest.param(lambda: SACConfig().training(replay_buffer_config={"capacity": 100}),
                 VE, ("replay_buffer_config['capacity']", ">= the train batch size (256)", "100"), id="SAC capacity < batch"),
    pytest.param(lambda: PPOConfig().multi_agent(policies={"p0", "p1"}, policies_to_train=["p0", "p9"]),
                 VE, ("policies_to_train", "['p0', 'p1']", "['p9']", "['p0', 'p9']"), id="policies_to_train unknown id"),
    pytest.param(lambda: PPOConfig().training(lr_schedule="linear"),
                 VE, ("lr_schedule", "total_iterations=N", "total_iterations=None"), id="lr_schedule without iterations"),
    pytest.param(lambda: DQNConfig().rl_module(model_config={"duelling": False}),
                 VE, ("duelling", "did you mean 'dueling'", "known keys"), id="DQN dict model_config typo"),
    pytest.param(lambda: PPOConfig().rl_module(model_config={"fcnet_hidens": [8]}),
                 VE, ("fcnet_hidens", "did you mean 'fcnet_hiddens'", "known keys"), id="PPO dict model_config typo"),
]


@pytest.mark.parametrize("make,exc,fragments", BUILD_CASES)
def test_build_checks_settings_together(make, exc, fragments):
    config = make().environment("CartPole-v1")
    raises_naming(exc, config.build, *fragments)


@pytest.mark.parametrize("env", ["CartPole-v1", "gymnax:CartPole-v1"])
def test_env_config_keys_the_env_does_not_take(env):
    config = PPOConfig().environment(env, env_config={"bogus": 1}).rl_module(model_config={"fcnet_hiddens": [4]})
    build = (lambda: config.build_train_fn(1)) if env.startswith("gymnax:") else config.build
    raises_naming(TE, build, "env_config {'bogus': 1}", f"'{env}'", "keyword arguments its constructor accepts", "['bogus']")


class _NoSpaces:
    observation_space, action_space = None, gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


@pytest.mark.parametrize("creator,exc,fragments", [
    (lambda cfg: 42, TE, ("environment 'bad-env'", "reset() and step()", "int 42")),
    (lambda cfg: _NoSpaces(), TE, ("environment 'bad-env'", "observation_space must be a gymnasium space", "nonetype none")),
], ids=["creator_returns_int", "env_without_observation_space"])
def test_env_creators_must_make_an_env(creator, exc, fragments):
    from jaxrl_modules.algorithms import register_env  # importable where the README says

    register_env("bad-env", creator)
    raises_naming(exc, PPOConfig().environment("bad-env").rl_module(model_config={"fcnet_hiddens": [4]}).build, *fragments)


@pytest.mark.parametrize("mapping,exc,fragments", [
    (lambda: "p0", TE, ("policy_mapping_fn", "(agent_id, episode, **kwargs)", "signature ()")),
    (None, VE, ("policy_mapping_fn", "['default_policy']", "no policy_mapping_fn is set")),
    (lambda agent_id, episode, **kw: "p9", VE, ("policy_mapping_fn", "unknown moduleid(s) ['p9']", "['p0', 'p1']")),
], ids=["wrong_signature", "not_set", "unknown_id"])
def test_policy_mapping_fn_is_checked(mapping, exc, fragments):
    from jaxrl_modules.envs import MultiAgentCartPole

    config = (PPOConfig().environment(MultiAgentCartPole).rl_module(model_config={"fcnet_hiddens": [4]})
              .training(train_batch_size_per_learner=32, minibatch_size=16).multi_agent(policies={"p0", "p1"},
                                                                                       policy_mapping_fn=mapping))
    raises_naming(exc, config.build, *fragments)


def test_get_params_rejects_an_unknown_module_id():
    algo = (PPOConfig().environment("CartPole-v1").rl_module(model_config={"fcnet_hiddens": [4]})
            .training(train_batch_size_per_learner=32, minibatch_size=16).build())
    raises_naming(KeyError, lambda: algo.get_params("p9"), "'p9'", "not found", "'default_policy'")


def test_config_copy_and_build_do_not_share_mutable_settings():
    config = PPOConfig().environment("CartPole-v1").rl_module(model_config={"fcnet_hiddens": [4]})
    copied = config.copy()
    copied.model_config["fcnet_hiddens"].append(8)
    assert config.model_config == {"fcnet_hiddens": [4]}
    algo = config.training(train_batch_size_per_learner=32, minibatch_size=16).build()
    config.model_config["fcnet_hiddens"][0] = 99  # after build: the algorithm keeps what it was built with
    assert algo.config.model_config == {"fcnet_hiddens": [4]}


def test_custom_module_dicts_are_not_checked_against_default_fields():
    from jaxrl_modules.rl_module import RLModule

    class Custom(RLModule):
        pass

    config = PPOConfig().rl_module(rl_module_spec=RLModuleSpec(Custom, model_config={"hidden_dim": 8}))
    config._validate_default_model_config()  # no error: Custom reads its own keys


# DefaultModelConfig: values checked at construction.
MODEL_CASES = [
    ("fcnet_hiddens", [], VE, "non-empty list of ints >= 1"),
    ("fcnet_hiddens", [64, 0], VE, "an int >= 1"),
    ("fcnet_hiddens", [64.0], TE, "an int >= 1"),
    ("fcnet_hiddens", [True], TE, "an int >= 1"),
    ("fcnet_hiddens", "64", TE, "list of ints >= 1"),
    ("fcnet_hiddens", 64, TE, "list of ints >= 1"),
    ("head_fcnet_hiddens", [-1], VE, "an int >= 1"),
    ("conv_filters", "abc", TE, "[out_channels, kernel, stride(, padding)]"),
    ("conv_filters", [], VE, "[out_channels, kernel, stride(, padding)]"),
    ("conv_filters", [[16, 3]], VE, "[out_channels, kernel, stride(, padding)]"),
    ("conv_filters", [[0, 3, 1]], VE, "an int >= 1"),
    ("conv_filters", [[16.0, 3, 1]], TE, "an int >= 1"),
    ("conv_filters", [[16, 0, 1]], VE, "an int >= 1 or a pair [h, w]"),
    ("conv_filters", [[16, [3], 1]], VE, "an int >= 1 or a pair [h, w]"),
    ("conv_filters", [[16, 3, 0]], VE, "an int >= 1 or a pair [h, w]"),
    ("conv_filters", [[16, 3, 1, "full"]], VE, "'same' or 'valid'"),
    ("lstm_cell_size", 0, VE, "an int >= 1"),
    ("lstm_cell_size", "256", TE, "an int >= 1"),
    ("max_seq_len", 0, VE, "an int >= 1"),
    ("max_seq_len", 20.0, TE, "an int >= 1"),
    ("log_std_clip_param", 0.0, VE, "> 0"),
    ("log_std_clip_param", -20, VE, "> 0"),
    ("log_std_clip_param", float("nan"), VE, "> 0"),
    ("log_std_clip_param", "20", TE, "> 0"),
    ("use_lstm", "False", TE, "a bool"),
    ("vf_share_layers", 1, TE, "a bool"),
    ("free_log_std", "yes", TE, "a bool"),
    ("fcnet_use_layernorm", None, TE, "a bool"),
    ("fcnet_activation", "relux", VE, "accepted names"),
    ("conv_activation", 3, TE, "a str, callable or None"),
    ("head_fcnet_activation", "tanhh", VE, "accepted names"),
    ("fcnet_kernel_initializer", "orthogonl", VE, "did you mean 'orthogonal'"),
    ("fcnet_kernel_initializer", 5, TE, "a name (str), a callable or None"),
    ("lstm_bias_initializer_kwargs", {"value": 1.0}, VE, "without an initializer name"),
]


@pytest.mark.parametrize("field,value,exc,expected", MODEL_CASES, ids=[f"{c[0]}={c[1]!r}" for c in MODEL_CASES])
def test_default_model_config_rejects_bad_value(field, value, exc, expected):
    fragments = (field.split("_kwargs")[0], expected)
    if not field.endswith("_kwargs"):
        fragments += (repr(value) if not isinstance(value, list) or not value else "",)
    raises_naming(exc, lambda: DefaultModelConfig(**{field: value}), *fragments)


INITIALIZER_KWARG_CASES = [
    ("orthogonal", {"scal": 1.0}, VE, ("fcnet_kernel_initializer", "'orthogonal'", "'scal'", "'scale'")),
    ("zeros", {"value": 1.0}, VE, ("fcnet_kernel_initializer", "'zeros' takes no kwargs", "['value']")),
    ("orthogonal", "scale=2", TE, ("fcnet_kernel_initializer", "a dict or none", "'scale=2'")),
    (jax.nn.initializers.variance_scaling, {"scale": 1.0, "mod": "fan_in"}, VE,
     ("fcnet_kernel_initializer", "'variance_scaling'", "'mod'", "'mode'")),
]


@pytest.mark.parametrize("name,kwargs,exc,fragments", INITIALIZER_KWARG_CASES,
                         ids=[f"{getattr(c[0], '__name__', c[0])}{c[1]!r}" for c in INITIALIZER_KWARG_CASES])
def test_initializer_kwargs_are_checked(name, kwargs, exc, fragments):
    raises_naming(exc, lambda: DefaultModelConfig(fcnet_kernel_initializer=name, fcnet_kernel_initializer_kwargs=kwargs),
                  *fragments)


def test_dict_model_config_typo_fails_when_the_default_module_builds():
    spec = RLModuleSpec(DefaultPPORLModule, CARTPOLE_OBS, CARTPOLE_ACT, model_config={"fcnet_hidens": [8]})
    raises_naming(VE, lambda: spec.build().init(jax.random.key(0)), "'fcnet_hidens'", "did you mean 'fcnet_hiddens'",
                  "known keys")


def test_conv_filters_that_shrink_the_observation_below_1x1_name_the_layer():
    image = gym.spaces.Box(0.0, 1.0, (10, 10, 3), np.float32)
    config = DefaultModelConfig(conv_filters=[[8, 3, 1, "valid"], [8, 9, 1, "valid"]], fcnet_hiddens=[8])
    module = DefaultPPORLModule(observation_space=image, action_space=CARTPOLE_ACT, model_config=config)
    raises_naming(VE, lambda: module.init(jax.random.key(0)), "conv_filters[1]", "8x8", "below 1x1", "(10, 10, 3)")
    strided = DefaultModelConfig(conv_filters=[[8, [3, 3], [2, 2]], [8, 9, 1, "valid"]], fcnet_hiddens=[8])  # 10 -> 5 -> < 1
    module = DefaultPPORLModule(observation_space=image, action_space=CARTPOLE_ACT, model_config=strided)
    raises_naming(VE, lambda: module.init(jax.random.key(0)), "conv_filters[1]", "5x5", "below 1x1")
    fits = DefaultModelConfig(conv_filters=[[8, [3, 3], [2, 2]], [8, 5, 1, "valid"]], fcnet_hiddens=[8])
    params = DefaultPPORLModule(observation_space=image, action_space=CARTPOLE_ACT, model_config=fits).init(jax.random.key(0))
    assert params["encoder"]["cnn"]["conv_1"]["kernel"].shape == (5, 5, 8, 8)


# ----------------------------------------------------------------- valid but unusual values
@pytest.mark.parametrize("algo,kwargs", [
    ("PPO", dict(gamma=0.0)), ("PPO", dict(gamma=1.0)), ("PPO", dict(gamma=1)), ("PPO", dict(lambda_=0.0)),
    ("PPO", dict(lr=np.float32(1e-3), num_epochs=np.int64(2), minibatch_size=np.int32(64))),
    ("PPO", dict(lr=jnp.float32(1e-3), gamma=np.array(0.9), num_epochs=jnp.asarray(2), shuffle_batch_per_epoch=jnp.bool_(True))),
    ("PPO", dict(entropy_coeff=0.0, kl_coeff=0.0, grad_clip=None, grad_clip_by="value")),
    ("PPO", dict(lr_schedule="linear", total_iterations=5)),
    ("DQN", dict(epsilon=0.05)), ("DQN", dict(epsilon=[(0, 1.0)])), ("DQN", dict(tau=1.0, n_step=3)),
    ("DQN", dict(epsilon=[[0, 1.0], [100, 0.0]], td_error_loss_fn="mse", training_intensity=None)),
    ("SAC", dict(target_entropy=-2.0, target_network_update_freq=0, lr=None)), ("SAC", dict(target_entropy="auto")),
    ("BC", dict(minibatch_size=2000, num_epochs=1)),
])
def test_unusual_but_valid_settings_are_accepted(algo, kwargs):
    config = CONFIGS[algo]().training(**kwargs)
    config.validate()
    for key, value in kwargs.items():
        if key != "epsilon":
            assert getattr(config, key) == value


def test_numpy_and_jax_scalars_in_a_model_config_are_stored_as_python_numbers():
    config = DefaultModelConfig(lstm_cell_size=jnp.int32(8), max_seq_len=np.int64(4), log_std_clip_param=jnp.float32(5.0),
                                use_lstm=np.bool_(True))
    assert (config.lstm_cell_size, config.max_seq_len, config.log_std_clip_param, config.use_lstm) == (8, 4, 5.0, True)
    assert all(type(x) in (int, float, bool) for x in (config.lstm_cell_size, config.max_seq_len,
                                                        config.log_std_clip_param, config.use_lstm))


def test_bare_float_epsilon_is_a_constant_schedule():
    config = DQNConfig().training(epsilon=0.05)
    assert config.epsilon == [(0, 0.05)]
    assert config.model_config_auto_includes["epsilon"] == [[0, 0.05]]
    config.epsilon = 0.2  # assigned directly: build normalises it too
    config.validate()
    assert config.epsilon == [(0, 0.2)]


def test_replay_buffer_config_merges_into_the_default():
    config = DQNConfig().training(replay_buffer_config={"capacity": 1000})
    assert config.replay_buffer_config == {"type": "ReplayBuffer", "capacity": 1000}
    assert parse_replay_buffer_config({"type": "EpisodeReplayBuffer"}, 32) == {"type": "EpisodeReplayBuffer", "capacity": 50000}


def test_env_runners_accepts_auto_and_ignores_num_env_runners():
    config = PPOConfig().env_runners(rollout_fragment_length="auto", num_env_runners=0, num_envs_per_env_runner=np.int64(2))
    assert config.rollout_fragment_length == "auto" and config.num_envs_per_env_runner == 2


@pytest.mark.parametrize("spelling", ["leakyrelu", "LeakyReLU", "leaky_relu", "Leaky_ReLU"])
def test_rllib_activation_spellings(spelling):
    assert get_activation_fn(spelling) is jax.nn.leaky_relu
    assert DefaultModelConfig(fcnet_activation=spelling).activation("fcnet_activation") is jax.nn.leaky_relu


def test_callable_initializer_with_kwargs_is_a_factory():
    config = DefaultModelConfig(fcnet_kernel_initializer=jax.nn.initializers.orthogonal,
                                fcnet_kernel_initializer_kwargs={"scale": 0.5})
    w = config.initializer("fcnet", "kernel", None)(jax.random.key(0), (4, 4))
    assert jnp.allclose(w.T @ w, 0.25 * jnp.eye(4), atol=1e-5)


def test_unusual_model_configs_build():
    DefaultModelConfig(fcnet_hiddens=(8,), head_fcnet_hiddens=[], log_std_clip_param=float("inf"), lstm_cell_size=1,
                       max_seq_len=1, conv_filters=[[4, [2, 3], [1, 2], "valid"]])


# ----------------------------------------------------------------- hypothesis: ranges
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None)
@given(finite)
def test_gamma_and_lambda_accept_exactly_the_unit_interval(x):
    for key in ("gamma", "lambda_"):
        if 0.0 <= x <= 1.0:
            assert getattr(PPOConfig().training(**{key: x}), key) == x
        else:
            raises_naming(VE, lambda: PPOConfig().training(**{key: x}), key, "[0, 1]", repr(x))


@settings(max_examples=60, deadline=None)
@given(finite)
def test_positive_settings_accept_exactly_positive_floats(x):
    for config, key in ((PPOConfig(), "lr"), (PPOConfig(), "clip_param"), (SACConfig(), "initial_alpha"),
                        (SACConfig(), "critic_lr"), (DQNConfig(), "adam_eps")):
        if x > 0:
            assert getattr(config.training(**{key: x}), key) == x
        else:
            raises_naming(VE, lambda: config.training(**{key: x}), key, "> 0", repr(x))


@settings(max_examples=60, deadline=None)
@given(finite)
def test_tau_accepts_exactly_the_half_open_unit_interval(x):
    if 0.0 < x <= 1.0:
        assert DQNConfig().training(tau=x).tau == x
    else:
        raises_naming(VE, lambda: SACConfig().training(tau=x), "tau", "(0, 1]", repr(x))


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-10**6, max_value=10**6))
def test_int_settings_accept_exactly_their_range(n):
    for key, low in (("num_epochs", 1), ("minibatch_size", 1), ("train_batch_size", 1)):
        if n >= low:
            assert getattr(PPOConfig().training(**{key: n}), key) == n
        else:
            raises_naming(VE, lambda: PPOConfig().training(**{key: n}), key, f">= {low}", repr(n))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.floats(0, 1)), min_size=1, max_size=5, unique_by=lambda p: p[0]))
def test_sorted_epsilon_schedules_in_range_are_accepted(points):
    points = sorted(points)
    assert DQNConfig().training(epsilon=points).epsilon == [(t, float(v)) for t, v in points]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["gamma", "lr", "clip_param", "num_epochs", "use_kl_loss", "grad_clip"]),
       st.sampled_from(["0.5", "True", "1", ""]))
def test_strings_are_never_truthy_settings(key, text):
    raises_naming(TE, lambda: PPOConfig().training(**{key: text}), key, repr(text))


# ----------------------------------------------------------------- lr_schedule
def test_linear_lr_schedule_decays_per_iteration_and_never_reaches_zero():
    schedule = linear_lr_schedule(1e-3, total_iterations=10, updates_per_iteration=5)
    lrs = [float(schedule(jnp.asarray(c))) for c in range(0, 60)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[4] == pytest.approx(1e-3)  # all of iteration 0 at full lr
    assert lrs[5] == pytest.approx(0.9e-3) and lrs[49] == pytest.approx(1e-4)  # the last iteration: lr / 10
    assert lrs[59] == pytest.approx(1e-4)  # beyond total_iterations: held, never 0
    assert all(a >= b > 0 for a, b in zip(lrs, lrs[1:]))


def test_lr_schedule_without_known_iterations_raises():
    config = PPOConfig().training(lr_schedule="linear")
    raises_naming(VE, lambda: learning_rate(config, 10), "lr_schedule='linear'", "total_iterations", "None")
    raises_naming(VE, lambda: config.environment("CartPole-v1").build(), "lr_schedule", "total_iterations", "None")


def test_cli_passes_its_iteration_count_to_lr_schedule():
    from jaxrl_modules.cli import build_config

    config = build_config("ppo", "CartPole-v1", {"lr_schedule": "linear"}, None, 0, iterations=50)
    assert config.total_iterations == 50
    schedule = learning_rate(config, 6)
    assert float(schedule(jnp.asarray(0))) == pytest.approx(config.lr)
    assert float(schedule(jnp.asarray(6 * 49))) == pytest.approx(config.lr / 50)
    with pytest.raises(SystemExit, match="gamma must be a number in \\[0, 1\\]; got 'high'"):
        build_config("ppo", "CartPole-v1", {"gamma": "high"}, None, 0, iterations=5)


def test_ppo_with_lr_schedule_still_learns_after_the_first_iteration():
    """The old schedule spanned one iteration when total_iterations was unknown: lr was 0 from iteration 2 on."""
    config = (PPOConfig().environment("CartPole-v1").rl_module(model_config={"fcnet_hiddens": [8]})
              .training(lr=1e-2, lr_schedule="linear", total_iterations=3, train_batch_size_per_learner=64,
                        minibatch_size=32, num_epochs=1))
    algo = config.build()
    algo.train()
    before = algo.get_params()
    algo.train()
    after = algo.get_params()
    assert not np.allclose(before["pi"]["out"]["kernel"], after["pi"]["out"]["kernel"])


@pytest.mark.parametrize("clip_by", ["global_norm", "norm", "value"])
def test_grad_clip_by_each_mode(clip_by):
    import optax

    from jaxrl_modules.algorithms.optim import clip_by_norm

    grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.0, 12.0])}
    opt = adam_with_clip(0.1, 1.0, clip_by=clip_by)
    updates, _ = opt.update(grads, opt.init(grads), grads)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in updates.values())
    transform = {"global_norm": optax.clip_by_global_norm(1.0), "norm": clip_by_norm(1.0), "value": optax.clip(1.0)}[clip_by]
    out, _ = transform.update(grads, transform.init(grads))
    if clip_by == "global_norm":
        assert math.isclose(float(optax.global_norm(out)), 1.0, rel_tol=1e-5)
    elif clip_by == "norm":
        assert all(math.isclose(float(jnp.linalg.norm(v)), 1.0, rel_tol=1e-5) for v in out.values())
    else:
        assert float(jnp.max(jnp.abs(out["b"]))) == 1.0
    raises_naming(VE, lambda: adam_with_clip(0.1, 1.0, clip_by="l2"), "grad_clip_by", "global_norm", "'l2'")


def test_bc_has_no_all_in_jit_training():
    raises_naming(VE, lambda: BCConfig().environment("gymnax:CartPole-v1").build_train_fn(10),
                  "BCConfig", "build_train_fn", "expected PPOConfig, DQNConfig or SACConfig")
