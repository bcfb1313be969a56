"""`register_env(name, creator)` (as `ray.tune.register_env`) and env construction.

`make_env` resolves, in order: a name registered with `register_env`; a built-in name
(`"MultiAgentCartPole"`); `"atari:ALE/<Game>-v5"` (the ALE env wrapped by
`wrap_atari_for_new_api_stack`); a gymnasium id (`ALE/...` ids register ale-py first); and
`"package.module:Name"` for an env class or creator importable by path when no gymnasium id
of that name exists (called as `Name(env_config)`, as RLlib calls env classes).
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable, NoReturn

_ENV_CREATORS: dict[str, Callable[[dict], Any]] = {}
GYMNAX_PREFIX = "gymnax:"
ATARI_PREFIX = "atari:"
# Names that resolve without registration (imported lazily): name -> (module, attribute).
BUILTIN_ENVS = {"MultiAgentCartPole": ("jaxrl_modules.envs.multi_agent_cartpole", "MultiAgentCartPole")}
# gym.make kwargs of RLlib's Atari examples: the wrapper's frame skip is the only one, no sticky actions.
ATARI_MAKE_DEFAULTS = {"frameskip": 1, "repeat_action_probability": 0.0, "full_action_space": False}
# env_config keys of "atari:" envs that go to the wrapper, not to gym.make, with RLlib's defaults.
ATARI_WRAPPER_DEFAULTS = {"dim": 64, "framestack": 4}
ATARI_INSTALL_HINT = "pip install 'jaxrl_modules[atari]'"
_ALE_ID = re.compile(r"^(?:ale_py:)?(ALE/[A-Za-z0-9]+-v5)$")


class EnvConfigError(TypeError):
    """An env_config key the environment's constructor does not accept (`key`, `env` name them)."""

    def __init__(self, message: str, key: str, env: str):
        super().__init__(message)
        self.key, self.env = key, env


def register_env(name: str, creator: Callable[[dict], Any]) -> None:
    """Registers `creator(env_config) -> env` under `name` for `config.environment(name)`."""
    if not callable(creator):
        raise TypeError(f"register_env needs a callable creator; got {type(creator).__name__}")
    _ENV_CREATORS[name] = creator


def is_gymnax(env: Any) -> bool:
    return isinstance(env, str) and env.startswith(GYMNAX_PREFIX)


def is_atari(env: Any) -> bool:
    return isinstance(env, str) and env.startswith(ATARI_PREFIX)


def ale_id(env: str) -> str:
    """`"ALE/<Game>-v5"` for `"ALE/<Game>-v5"` or `"ale_py:ALE/<Game>-v5"`; ValueError otherwise."""
    match = _ALE_ID.match(env) if isinstance(env, str) else None
    if match is None:
        raise ValueError(f"Atari wrapping needs an ALE image env id 'ALE/<Game>-v5' or 'ale_py:ALE/<Game>-v5' "
                         f"(e.g. ALE/Pong-v5); got {env!r}")
    return match.group(1)


def register_ale() -> None:
    """Imports ale-py and registers its `ALE/...` ids with gymnasium (ValueError if not installed)."""
    import gymnasium as gym

    try:
        import ale_py
    except ImportError as err:
        raise ValueError(f"Atari envs need ale-py, which is not installed: {ATARI_INSTALL_HINT} ({err})") from None
    gym.register_envs(ale_py)


def make_env(env: Any, env_config: dict) -> Any:
    """A gymnasium env (or multi-agent env) from an id, a registered name, a class or a creator."""
    import gymnasium as gym

    if env is None:
        raise ValueError("No environment set: call config.environment(env=...) first.")
    if isinstance(env, str):
        if env in _ENV_CREATORS:
            return _checked_env(_call_creator(_ENV_CREATORS[env], env, env_config), env)
        if env in BUILTIN_ENVS:
            module, attr = BUILTIN_ENVS[env]
            return _checked_env(_call_creator(getattr(importlib.import_module(module), attr), env, env_config), env)
        if is_atari(env):
            return make_atari(env, env_config)
        if env.startswith(("ALE/", "ale_py:")):
            register_ale()
        try:
            return gym.make(env, **env_config)
        except gym.error.DependencyNotInstalled as err:
            raise ValueError(f"Environment {env!r} is a known gymnasium id, but its optional dependency is not installed: "
                             f"{err}") from None
        except gym.error.UnregisteredEnv as err:
            creator = _importable_creator(env)
            if creator is None:
                raise ValueError(f"Unknown environment {env!r}: not registered with register_env, not a gymnasium id "
                                 f"and not an importable 'package.module:EnvClass' ({err})") from None
            return _checked_env(_call_creator(creator, env, env_config), env)
        except gym.error.Error as err:
            raise ValueError(f"Environment {env!r} could not be created with env_config {env_config!r}: {err}") from None
        except ModuleNotFoundError as err:  # "module:Env-v0" ids import their module first
            module = env.split(":", 1)[0] if ":" in env else err.name
            raise ValueError(f"Environment {env!r} needs the Python module {module!r}, which is not installed: pip install "
                             f"the package that provides it ({err})") from None
        except TypeError as err:
            _env_config_error(env, env_config, err)
    if callable(env):
        return _checked_env(env(dict(env_config)), env)
    raise TypeError(f"environment must be a gymnasium id, a registered name, an env class or a creator; got {env!r}")


def make_atari(env: str, env_config: dict) -> Any:
    """`"atari:ALE/<Game>-v5"`: `gym.make(id, **ATARI_MAKE_DEFAULTS | env_config)` wrapped by
    `wrap_atari_for_new_api_stack(env, dim=64, framestack=4)` (env_config's `dim` and
    `framestack` go to the wrapper instead)."""
    import gymnasium as gym

    from jaxrl_modules.envs.atari_wrappers import wrap_atari_for_new_api_stack

    game = ale_id(env[len(ATARI_PREFIX):] if is_atari(env) else env)
    register_ale()
    make_kwargs = {**ATARI_MAKE_DEFAULTS, **env_config}
    wrapper = {key: make_kwargs.pop(key, default) for key, default in ATARI_WRAPPER_DEFAULTS.items()}
    for key, value in wrapper.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"env_config {key!r} of Atari env {game!r} (the wrapper's {key}) must be an int >= 1; "
                             f"got {value!r}")
    try:
        base = gym.make(game, **make_kwargs)
    except gym.error.UnregisteredEnv as err:
        raise ValueError(f"Unknown Atari game {game!r}: not an ale-py id ({err})") from None
    except (gym.error.Error, RuntimeError) as err:  # ALE's own checks (frameskip, mode, difficulty)
        raise ValueError(f"Atari env {game!r} rejected env_config {env_config!r}: {err}") from None
    except TypeError as err:
        _env_config_error(game, env_config, err)
    return wrap_atari_for_new_api_stack(base, **wrapper)


def _importable_creator(env: str) -> Any:
    """The object `Name` of `"package.module:Name"` when the module imports and has it, else None."""
    module, _, attr = env.partition(":")
    if not attr.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
        return None
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None
    return obj if callable(obj) else None


def _call_creator(creator: Callable, env: str, env_config: dict) -> Any:
    try:
        return creator(dict(env_config))
    except TypeError as err:
        _env_config_error(env, env_config, err)


def _checked_env(made: Any, env: Any) -> Any:
    """What a registered creator or env class made: an env with reset/step and, single-agent,
    gymnasium observation and action spaces (a TypeError naming the environment otherwise)."""
    import gymnasium as gym

    name = env if isinstance(env, str) else getattr(env, "__name__", repr(env))
    if not (hasattr(made, "reset") and hasattr(made, "step")):
        raise TypeError(f"environment {name!r} must create an env with reset() and step() (a gymnasium or multi-agent env); "
                        f"its creator returned {type(made).__name__} {made!r}"[:400])
    if not hasattr(made, "possible_agents"):
        for attr in ("observation_space", "action_space"):
            space = getattr(made, attr, None)
            if not isinstance(space, gym.spaces.Space):
                raise TypeError(f"environment {name!r}: the env's {attr} must be a gymnasium Space; got "
                                f"{type(space).__name__} {space!r}")
    return made


def make_gymnax(env: str, env_config: dict) -> tuple[Any, Any]:
    """`(env, env_params)` for `"gymnax:<id>"`; gymnax is imported only here."""
    import gymnax

    name = env[len(GYMNAX_PREFIX):]
    try:
        gym_env, params = gymnax.make(name, **env_config)
    except (ValueError, KeyError) as err:
        raise ValueError(f"Unknown gymnax environment {name!r} ({err})") from None
    except TypeError as err:
        _env_config_error(env, env_config, err)
    return gym_env, params


_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")


def _env_config_error(env: str, env_config: dict, err: TypeError) -> NoReturn:
    """Re-raises an env constructor's "unexpected keyword argument" as an `EnvConfigError` naming
    the key and the environment; other TypeErrors as they are."""
    match = _UNEXPECTED.search(str(err))
    if env_config and match and match.group(1) in env_config:
        key = match.group(1)
        raise EnvConfigError(f"env_config {env_config!r} does not fit environment {env!r}: its constructor takes no keyword "
                             f"argument {key!r}; expected only keyword arguments its constructor accepts; got "
                             f"{sorted(env_config)}", key, env) from None
    if env_config and "keyword argument" in str(err):
        raise EnvConfigError(f"env_config {env_config!r} does not fit environment {env!r}: expected only keyword arguments "
                             f"its constructor accepts; got {sorted(env_config)} ({str(err).split(' was raised')[0]})",
                             "", env) from None
    raise err
