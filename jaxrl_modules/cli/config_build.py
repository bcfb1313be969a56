"""`--config` overrides -> a checked algorithm config, and `jaxrl-modules config --algo A`."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from typing import Any, Optional

from jaxrl_modules.cli.parser import PROG, UsageError

# Fast-learning PPO settings used by the command (RLlib's PPO defaults learn CartPole slowly).
PPO_CLI_DEFAULTS = dict(lr=1e-3, lambda_=0.95, clip_param=0.2, vf_loss_coeff=0.5, grad_clip=0.5, num_epochs=6,
                        minibatch_size=256, train_batch_size_per_learner=1024, use_kl_loss=False, vf_clip_param=1e6)
DQN_CLI_DEFAULTS = dict(lr=2.5e-4, train_batch_size=128, epsilon=[(0, 1.0), (125000, 0.05)],
                        num_steps_sampled_before_learning_starts=10000, target_network_update_freq=50,
                        replay_buffer_config={"capacity": 10000}, grad_clip=10.0, dueling=False, td_error_loss_fn="mse")
SAC_CLI_DEFAULTS = dict(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, train_batch_size_per_learner=256,
                        num_steps_sampled_before_learning_starts=1000, replay_buffer_config={"capacity": 50000})
BC_CLI_DEFAULTS = dict(lr=1e-3, minibatch_size=250, num_epochs=2)
NUM_ENVS_DEFAULTS = {"ppo": 8, "dqn": 10, "sac": 1, "bc": 1}
CLI_MODEL_DEFAULTS = {"ppo": {"fcnet_hiddens": [64, 64]}, "bc": {"fcnet_hiddens": [64, 64]},
                      "sac": {"fcnet_hiddens": [64, 64], "fcnet_activation": "relu"},
                      "dqn": {"fcnet_hiddens": [120, 84], "fcnet_activation": "relu"}}



def check_seed(flag: str, value: Any) -> int:
    """`--seed` (train and evaluate), checked by the library's one rule for seeds (`validation.seed_int`:
    an int in [0, 2**32 - 1]) before anything is loaded; a UsageError naming `flag`."""
    from jaxrl_modules.validation import seed_int

    try:
        return seed_int(flag, value)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None


def check_seeds(seed: int, num_seeds: int) -> None:
    """`--num-seeds N` trains seeds seed .. seed + N - 1: the last must be a seed too."""
    from jaxrl_modules.validation import SEED_MAX

    if num_seeds > 1 and seed + num_seeds - 1 > SEED_MAX:
        raise UsageError(f"--seed {seed} with --num-seeds {num_seeds} trains seeds {seed} .. {seed + num_seeds - 1}; "
                         f"expected the last to be <= {SEED_MAX} (--seed <= {SEED_MAX - num_seeds + 1})")


def parse_overrides(items: list[str], flag: str = "--config") -> dict:
    """`key=value` entries of `flag` -> dict (values: Python literals, else strings)."""
    from jaxrl_modules.cli.envs import parse_key_values

    return parse_key_values(items, flag)


def build_config(algo: str, env: str, overrides: dict, num_envs: Optional[int], seed: int,
                 iterations: Optional[int] = None, *, env_config: Optional[dict] = None, flatten_obs: bool = False,
                 atari: bool = False) -> Any:
    """The config `train` builds; `iterations` (the --iterations count) is the total that
    `lr_schedule` decays over unless `total_iterations` is given. `env_config`, `flatten_obs`
    and `atari` are `--env-config`, `--flatten-obs` and `--atari` (see `cli/envs.py`); the env
    is built once to check them. Bad settings exit with the message."""
    try:
        return _build_config(algo, env, overrides, num_envs, seed, iterations, dict(env_config or {}), flatten_obs, atari)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None


def _build_config(algo: str, env: str, overrides: dict, num_envs: Optional[int], seed: int,
                  iterations: Optional[int], env_config: dict, flatten_obs: bool, atari: bool) -> Any:
    from jaxrl_modules.cli.envs import ATARI_MODEL_DEFAULTS, apply_env_flags
    from jaxrl_modules.validation import is_int
    from jaxrl_modules.model_config import DefaultModelConfig

    Config, training = config_class(algo)
    check_seed("--seed", seed)
    given_num_envs = num_envs is not None
    num_envs = NUM_ENVS_DEFAULTS[algo] if num_envs is None else num_envs  # 0 is an error, not the default
    if not is_int(num_envs) or num_envs < 1:
        raise UsageError(f"--num-envs (num_envs_per_env_runner) must be an int >= 1; got {num_envs}")
    config = Config().environment(env).debugging(seed=seed)
    if algo == "bc" and "input_" not in overrides:
        raise UsageError("--algo bc needs recorded transitions: --config input_=<path to .npz or directory>")
    model_fields = {f.name for f in dataclasses.fields(DefaultModelConfig)}
    apply_env_flags(config, algo, env, env_config, flatten_obs, atari)
    if not _is_multi_agent_env(algo, config, atari):
        config.env_runners(num_envs_per_env_runner=num_envs)
    elif given_num_envs and num_envs != 1:  # the multi-agent loop steps one env: the default is left there
        raise UsageError(f"--num-envs {num_envs}: --env {env!r} is a multi-agent env, whose loop steps one env "
                         f"(num_envs_per_env_runner 1); expected --num-envs 1 or no --num-envs")
    model = dict(CLI_MODEL_DEFAULTS[algo])
    if atari and algo == "ppo":
        model.update(ATARI_MODEL_DEFAULTS)
    for key, value in overrides.items():
        if key in model_fields:
            model[key] = value
        elif key == "num_envs_per_env_runner":
            config.env_runners(num_envs_per_env_runner=value)
        elif key == "seed":
            check_seed("--config seed", value)
            config.debugging(seed=value)
        elif key == "input_" and algo == "bc":
            config.offline_data(input_=value)
        elif key in config._training_keys():
            training[key] = value
        else:
            known = sorted(set(config._training_keys()) | model_fields | {"num_envs_per_env_runner", "seed"}
                           | ({"input_"} if algo == "bc" else set()))
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"Unknown --config key {key!r}: not a training or model setting of --algo {algo}.{hint} "
                             f"Known keys: training {sorted(config._training_keys())}, model {sorted(model_fields)}")
    batch = training.get("train_batch_size_per_learner") or training.get("train_batch_size")
    if "minibatch_size" in training and "minibatch_size" not in overrides and is_int(batch):
        training["minibatch_size"] = min(training["minibatch_size"], batch)  # our default never exceeds the user's batch
    if training.get("lr_schedule") is not None and training.get("total_iterations") is None:
        training["total_iterations"] = iterations
    config = config.rl_module(model_config=model).training(**training)
    config.validate()
    return config


def _is_multi_agent_env(algo: str, config: Any, atari: bool) -> bool:
    """Whether `--env` (already checked by `apply_env_flags`) is a multi-agent env of the host loop: only PPO
    trains one, on gymnasium-style envs (not gymnax, not Atari; a JaxMARL env trains in one jit, over
    `--num-envs` envs); the env is built once more to tell."""
    from jaxrl_modules.algorithms.jaxmarl_runner import is_jaxmarl
    from jaxrl_modules.algorithms.multi_agent_env_runner import is_multi_agent_env
    from jaxrl_modules.envs.registry import is_gymnax, make_env

    if algo != "ppo" or atari or is_gymnax(config.env) or is_jaxmarl(config.env):
        return False
    env = make_env(config.env, config.env_config)
    try:
        return is_multi_agent_env(env)
    finally:
        if hasattr(env, "close"):
            env.close()


def config_class(algo: str) -> tuple[type, dict]:
    """The config class of `--algo` and the training settings the command uses instead of its defaults."""
    if algo == "ppo":
        from jaxrl_modules.algorithms.ppo import PPOConfig

        return PPOConfig, dict(PPO_CLI_DEFAULTS)
    if algo == "dqn":
        from jaxrl_modules.algorithms.dqn import DQNConfig

        return DQNConfig, dict(DQN_CLI_DEFAULTS)
    if algo == "sac":
        from jaxrl_modules.algorithms.sac import SACConfig

        return SACConfig, dict(SAC_CLI_DEFAULTS)
    if algo == "bc":
        from jaxrl_modules.algorithms.bc import BCConfig

        return BCConfig, dict(BC_CLI_DEFAULTS)
    raise UsageError(f"Unknown --algo {algo!r}; available: ppo, dqn, sac, bc")


def _model_expected(name: str, annotation: str) -> str:
    """What a DefaultModelConfig field accepts (the checks are in its __post_init__)."""
    if name.endswith("_kwargs"):
        return "None or a dict of initializer kwargs"
    if name.endswith("_initializer"):
        return "None (the default), an initializer name (e.g. 'orthogonal') or a callable"
    if name.endswith("_activation"):
        return "an activation name (e.g. 'tanh', 'relu', 'linear') or a callable"
    if name.endswith("hiddens"):
        return "a list of ints >= 1 (layer sizes)" + ("; may be empty" if name.startswith("head") else "")
    if name == "conv_filters":
        return "None or a list of [out_channels, kernel, stride]"
    return {"bool": "a bool (True or False)", "int": "an int >= 1", "float": "a number > 0"}.get(annotation, annotation)


def show_config(args: argparse.Namespace) -> int:
    """Prints every `--config` setting of `--algo` with the default `train` uses and what it accepts."""
    from jaxrl_modules.model_config import DefaultModelConfig

    config_cls, cli_training = config_class(args.algo)
    config = config_cls()
    table = config.settings_table()
    lines = [f"# --config settings of `{PROG} train --algo {args.algo}` ({config_cls.__name__}): "
             "key = default  # accepted values", "# training"]

    def line(key: str, default: Any, expected: str, note: str = "") -> str:
        return f"{key} = {default!r}  # {expected}{note}"

    for key in sorted(set(config._training_keys()) | {"num_envs_per_env_runner", "seed"}):
        if key == "num_envs_per_env_runner":
            default, note = NUM_ENVS_DEFAULTS[args.algo], " (also --num-envs)"
            if args.algo == "ppo":
                note += "; 1 on multi-agent envs, whose loop steps one env"
        elif key == "seed":
            default, note = 0, " (also --seed)"
        elif key in cli_training:
            default, note = cli_training[key], f" (library default {getattr(config, key, None)!r})"
        else:
            default, note = getattr(config, key, None), ""
        if key == "total_iterations":
            note = " (default: --iterations when lr_schedule is set)"
        lines.append(line(key, default, getattr(table.get(key), "expected", "any value"), note))
    if args.algo == "bc":
        lines.append(line("input_", None, "a path to recorded transitions (.npz or a directory); required"))
    lines.append("# model (DefaultModelConfig)")
    model_defaults = DefaultModelConfig()
    for field in dataclasses.fields(DefaultModelConfig):
        library = getattr(model_defaults, field.name)
        default = CLI_MODEL_DEFAULTS[args.algo].get(field.name, library)
        note = f" (library default {library!r})" if default != library else ""
        lines.append(line(field.name, default, _model_expected(field.name, str(field.type)), note))
    print("\n".join(lines))
    return 0


def config_from_args(args: argparse.Namespace) -> Any:
    """The checked algorithm config of a `train` command line (all of its flags); `--resume`
    rebuilds the same config from the stored flags. Bad values raise `UsageError`."""
    config = build_config(args.algo, args.env, parse_overrides(args.config), args.num_envs, args.seed, args.iterations,
                          env_config=parse_overrides(getattr(args, "env_config", None) or [], "--env-config"),
                          flatten_obs=bool(getattr(args, "flatten_obs", False)), atari=bool(getattr(args, "atari", False)))
    learners = getattr(args, "num_learners", 0)
    try:
        config.learners(num_learners=learners)
        config.learner_count()  # more learners than devices: named now
    except (TypeError, ValueError) as err:
        raise UsageError(str(err).replace("num_learners", "--num-learners (num_learners)", 1)) from None
    num_seeds = getattr(args, "num_seeds", 1)
    if isinstance(num_seeds, int):
        check_seeds(config.seed, num_seeds)
    return config
