"""The env flags of `train`: `--env-config`, `--flatten-obs`, `--atari`, checked on the env itself.

`--atari` turns `ALE/<Game>-v5` (or `ale_py:ALE/<Game>-v5`) into the registry's
`"atari:ALE/<Game>-v5"`, which every `make_env` call (env runner, vector env, evaluation,
a checkpoint's recorded id) builds as `gym.make(id, frameskip=1, repeat_action_probability=0.0,
full_action_space=False, **env_config)` wrapped by `wrap_atari_for_new_api_stack(dim=64, framestack=4)`.
"""

from __future__ import annotations

import ast
from typing import Any

from jaxrl_modules.cli.parser import UsageError

# Model settings of RLlib's Atari PPO example (the conv filters are the CNN's 64x64 default).
ATARI_MODEL_DEFAULTS = {"head_fcnet_hiddens": [256], "vf_share_layers": True}
# What each host-loop algorithm supports of the flags.
_FLATTEN_ALGOS = {"ppo", "dqn", "sac"}


def parse_key_values(items: list[str], flag: str) -> dict:
    """`key=value` entries -> dict; values are Python literals, else strings. Keys must be names."""
    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} entries are key=value; got {item!r}")
        if flag == "--env-config" and not key.isidentifier():
            raise UsageError(f"{flag} key {key!r} is not a keyword argument name (letters, digits, _); got {item!r}")
        if key in out:
            raise UsageError(f"{flag} key {key!r} is given twice; got {items}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out[key] = raw
    return out


def flatten_connector(env: Any) -> Any:
    """The env-to-module connector of `--flatten-obs` (a module-level function, so configs copy and pickle)."""
    from jaxrl_modules.connectors import FlattenObservations

    return FlattenObservations()


def env_id_for_config(env: str, atari: bool) -> str:
    """`config.env` for `--env ENV [--atari]`: `"atari:ALE/<Game>-v5"` with `--atari`, else `env`."""
    from jaxrl_modules.envs.registry import ATARI_PREFIX, ale_id, is_gymnax

    if not atari:
        return env
    if is_gymnax(env):
        raise UsageError(f"--atari wraps ALE envs (ALE/<Game>-v5); got --env {env!r}, a gymnax env")
    try:
        return ATARI_PREFIX + ale_id(env[len(ATARI_PREFIX):] if env.startswith(ATARI_PREFIX) else env)
    except ValueError:
        raise UsageError(f"--atari needs an ALE image env --env ALE/<Game>-v5 or ale_py:ALE/<Game>-v5 (e.g. ALE/Pong-v5); "
                         f"got --env {env!r}") from None


def apply_env_flags(config: Any, algo: str, env: str, env_config: dict, flatten_obs: bool, atari: bool) -> Any:
    """Sets `config.environment(env, env_config=...)` and the `--flatten-obs` connector, after
    building the env once to check it: an unknown id, a bad env_config key or value, an
    observation space the default modules cannot take, or a flag the env or `--algo` does not
    support is a `UsageError` naming the flag."""
    from jaxrl_modules.envs.registry import is_gymnax

    env_id = env_id_for_config(env, atari)
    if flatten_obs and algo not in _FLATTEN_ALGOS:
        raise UsageError(f"--flatten-obs is for algorithms that sample an env (ppo, dqn, sac); got --algo {algo} "
                         f"(bc learns from recorded observations as they are)")
    if flatten_obs and is_gymnax(env_id) and algo != "ppo":
        raise UsageError(f"--flatten-obs on a gymnax env works with --algo ppo only (its all-in-jit {algo} has no "
                         f"connector); got --algo {algo} --env {env}")
    config.environment(env_id, env_config=env_config)
    if flatten_obs:
        config.env_runners(env_to_module_connector=flatten_connector)
    if algo != "bc" or env_config or flatten_obs or atari:
        _check_env(algo, env, env_id, env_config, flatten_obs)
    return config


def _check_env(algo: str, flag_env: str, env_id: str, env_config: dict, flatten_obs: bool) -> None:
    """Builds the env once and checks its spaces against the flags (see `apply_env_flags`)."""
    import gymnasium as gym

    from jaxrl_modules.algorithms.jaxmarl_runner import is_jaxmarl, make_jaxmarl
    from jaxrl_modules.envs.registry import EnvConfigError, is_gymnax, make_env, make_gymnax

    try:
        if is_gymnax(env_id):
            from jaxrl_modules.envs.gymnax_spaces import to_gymnasium

            gx_env, params = make_gymnax(env_id, env_config)
            obs_space, multi = to_gymnasium(gx_env.observation_space(params)), False
        elif is_jaxmarl(env_id):
            from jaxrl_modules.algorithms.jaxmarl_runner import to_gymnasium as marl_space

            marl = make_jaxmarl(env_id, env_config)
            obs_space, multi = marl_space(marl.observation_space(marl.agents[0])), True
        else:
            made = make_env(env_id, env_config)
            multi = hasattr(made, "possible_agents") and getattr(made, "observation_space", None) is None
            if multi:
                first = list(made.possible_agents)[0]
                getter = getattr(made, "get_observation_space", None)
                obs_space = getter(first) if getter else made.observation_spaces[first]
            else:
                obs_space = made.observation_space
            if hasattr(made, "close"):
                made.close()
    except EnvConfigError as err:
        if err.key:
            raise UsageError(f"--env-config key {err.key!r} is not accepted by --env {flag_env!r} (its constructor has no "
                             f"such keyword argument); got --env-config {env_config!r}") from None
        raise UsageError(f"--env-config {env_config!r} does not fit --env {flag_env!r}: {err}") from None
    except (TypeError, ValueError) as err:
        raise UsageError(f"--env {flag_env!r}{f' with --env-config {env_config!r}' if env_config else ''}: {err}") from None
    except (KeyError, IndexError, AssertionError, AttributeError, RuntimeError) as err:
        if not env_config:
            raise  # the env itself fails, whatever the flags: not a command-line error
        raise UsageError(f"--env {flag_env!r} could not be created with --env-config {env_config!r}: the env's constructor "
                         f"raised {type(err).__name__} {err}") from None
    if multi and algo != "ppo":
        raise UsageError(f"--env {flag_env!r} is a multi-agent env, which only --algo ppo trains; got --algo {algo}")
    if multi and flatten_obs:
        raise UsageError(f"--flatten-obs is for single-agent envs; --env {flag_env!r} is a multi-agent env (its agents "
                         f"observe {obs_space})")
    image = isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 3
    if not flatten_obs and not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) in (1, 3)):
        raise UsageError(f"--env {flag_env!r} observes {obs_space}, which the default modules do not take (they need a "
                         f"1-D Box or an [H, W, C] image Box): add --flatten-obs (Discrete -> one-hot, Dict/Tuple -> "
                         f"concatenated)")
    if image and obs_space.shape[:2] == (210, 160) and not flatten_obs:
        raise UsageError(f"--env {flag_env!r} observes raw 210x160 Atari frames: add --atari to wrap them "
                         f"(64x64 grayscale, 4 stacked frames, as RLlib)")
    if flatten_obs and algo != "ppo" and isinstance(obs_space, (gym.spaces.Tuple, gym.spaces.Dict)):
        raise UsageError(f"--flatten-obs with --algo {algo} takes Box, Discrete, MultiDiscrete or MultiBinary observations "
                         f"(its replay loop stores arrays); --env {flag_env!r} observes {obs_space}: use --algo ppo")
    if flatten_obs:
        from jaxrl_modules.connectors import FlattenObservations

        try:
            FlattenObservations(obs_space)
        except ValueError as err:
            raise UsageError(f"--flatten-obs cannot flatten the observations of --env {flag_env!r}: {err}") from None
