"""`register_env(name, creator)` (as `ray.tune.register_env`) and env construction."""

from __future__ import annotations

from typing import Any, Callable

_ENV_CREATORS: dict[str, Callable[[dict], Any]] = {}
GYMNAX_PREFIX = "gymnax:"


def register_env(name: str, creator: Callable[[dict], Any]) -> None:
    """Registers `creator(env_config) -> env` under `name` for `config.environment(name)`."""
    if not callable(creator):
        raise TypeError(f"register_env needs a callable creator; got {type(creator).__name__}")
    _ENV_CREATORS[name] = creator


def is_gymnax(env: Any) -> bool:
    return isinstance(env, str) and env.startswith(GYMNAX_PREFIX)


def make_env(env: Any, env_config: dict) -> Any:
    """A gymnasium env (or multi-agent env) from an id, a registered name, a class or a creator."""
    import gymnasium as gym

    if env is None:
        raise ValueError("No environment set: call config.environment(env=...) first.")
    if isinstance(env, str):
        if env in _ENV_CREATORS:
            return _checked_env(_ENV_CREATORS[env](dict(env_config)), env)
        try:
            return gym.make(env, **env_config)
        except gym.error.DependencyNotInstalled as err:
            raise ValueError(f"Environment {env!r} is a known gymnasium id, but its optional dependency is not installed: "
                             f"{err}") from None
        except gym.error.Error as err:
            raise ValueError(f"Unknown environment {env!r}: not registered with register_env and not a gymnasium id "
                             f"({err})") from None
        except ModuleNotFoundError as err:  # "module:Env-v0" ids import their module first (e.g. ale_py:ALE/Pong-v5)
            module = env.split(":", 1)[0] if ":" in env else err.name
            raise ValueError(f"Environment {env!r} needs the Python module {module!r}, which is not installed: pip install "
                             f"the package that provides it (e.g. ale-py for ale_py:ALE/...) ({err})") from None
        except TypeError as err:
            _env_config_error(env, env_config, err)
    if callable(env):
        return _checked_env(env(dict(env_config)), env)
    raise TypeError(f"environment must be a gymnasium id, a registered name, an env class or a creator; got {env!r}")


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


def _env_config_error(env: str, env_config: dict, err: TypeError) -> None:
    """Re-raises an env constructor's "unexpected keyword argument" as an error naming env_config."""
    if env_config and "keyword argument" in str(err):
        raise TypeError(f"env_config {env_config!r} does not fit environment {env!r}: expected only keyword arguments "
                        f"its constructor accepts; got {sorted(env_config)} ({err})") from None
    raise err
