"""`jaxrl-modules evaluate CHECKPOINT`: roll out any checkpoint `train` writes.

CHECKPOINT is an algorithm checkpoint (a folder with algorithm.json), a folder holding one at
`algorithm/` (an orbax CheckpointManager step), a run folder or its `checkpoints/` folder (the newest
step is taken, and named), or a module checkpoint (a folder with metadata.json; then `--env` is
needed unless a run folder above it says which env it was trained on). The env is rebuilt from
algorithm.json's "env" entry (id, env_config, normalize/clip actions, the FlattenObservations
connector, the multi-agent mapping), else from `--env` or the run folder's config.json. gymnax envs
are evaluated in one jit (`algorithms/jax_evaluate.py`), gymnasium envs in a host loop, multi-agent
envs with each agent acting through its module (an episode's return is the sum over its agents).
"""

from __future__ import annotations

import argparse
import warnings
import dataclasses
import importlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Optional

from jaxrl_modules.cli.parser import UsageError, check_positive

CONNECTOR_PACKAGE = "jaxrl_modules.connectors."  # connectors evaluate can rebuild (their class path starts so)
MULTI_SEED_JSON = "multi_seed.json"  # a --num-seeds checkpoint: one algorithm checkpoint per seed_<i>/ (algorithms/multi_seed.py)
RECORD_WRITERS = {".gif": ("PIL", "pillow"), ".mp4": ("imageio_ffmpeg", "imageio-ffmpeg")}


@dataclasses.dataclass
class EnvSpec:
    """What evaluate rolls the checkpoint out on, and where that came from (`source`)."""

    env: str
    env_config: dict
    source: str
    normalize_actions: bool = True
    clip_actions: bool = False
    connector: Optional[dict] = None
    multi_agent: bool = False
    agent_to_module: Optional[list] = None


# ----------------------------------------------------------------- finding the checkpoint
def _holds_checkpoint(path: Path) -> Optional[Path]:
    """The algorithm (or multi-seed) checkpoint in `path` (itself or `path/algorithm`), else None."""
    for candidate in (path, path / "algorithm"):
        if (candidate / "algorithm.json").is_file() or (candidate / MULTI_SEED_JSON).is_file():
            return candidate
    return None


def _seed_checkpoints(ckpt: Path) -> list[Path]:
    """The per-seed algorithm checkpoints (`seed_<i>/`) of a multi-seed checkpoint, in seed order."""
    seeds = sorted((int(p.name[5:]), p) for p in ckpt.glob("seed_*") if p.name[5:].isdigit() and p.is_dir())
    if not seeds:
        raise UsageError(f"The multi-seed checkpoint {str(ckpt)!r} holds no seed_<i>/ checkpoint; found "
                         f"{sorted(p.name for p in ckpt.iterdir())[:8]}")
    return [p for _, p in seeds]


def _newest_in(folder: Path) -> tuple[Path, str]:
    """The newest checkpoint among `folder`'s children: the highest numbered step, else the latest written."""
    found = [(child, ckpt) for child in folder.iterdir() if child.is_dir() and (ckpt := _holds_checkpoint(child))]
    if not found:
        names = sorted(p.name for p in folder.iterdir())[:8]
        raise UsageError(f"No checkpoint in {str(folder)!r}: expected step folders holding an algorithm checkpoint "
                         f"(<iteration>/algorithm/algorithm.json); found {names}")
    steps = [(int(child.name), ckpt) for child, ckpt in found if child.name.isdigit()]
    if steps:
        step, ckpt = max(steps)
        return ckpt, f"step {step}, the newest of {len(found)} in {str(folder)!r}"
    child, ckpt = max(found, key=lambda f: max(p.stat().st_mtime for p in f[1].glob("*.json")))
    return ckpt, f"the latest written of {len(found)} in {str(folder)!r}"


def find_checkpoint(path: Path) -> tuple[str, Path, str]:
    """`(kind, checkpoint folder, note)`, kind "algorithm" or "module"; a UsageError when `path` holds neither."""
    if not path.is_dir():
        raise UsageError(f"No checkpoint at {str(path)!r}: expected a checkpoint directory (an algorithm or module "
                         f"checkpoint, a run folder or its checkpoints/), got {'a file' if path.exists() else 'nothing'}")
    if path.name.startswith("seed_") and (path.parent / MULTI_SEED_JSON).is_file() and (path / "algorithm.json").is_file():
        return "algorithm", path, "one seed of a multi-seed checkpoint"
    ckpt = _holds_checkpoint(path)
    if ckpt is not None:
        return "algorithm", ckpt, "an algorithm checkpoint" if ckpt == path else "the algorithm checkpoint in it"
    if (path / "metadata.json").is_file():
        return "module", path, "a module checkpoint"
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if any(c.is_dir() and _holds_checkpoint(c) for c in folder.iterdir()):
        return ("algorithm", *_newest_in(folder))
    names = sorted(p.name for p in path.iterdir())[:8]
    raise UsageError(f"{str(path)!r} is not a jaxrl_modules checkpoint: expected an algorithm checkpoint (algorithm.json), "
                     f"a module checkpoint (metadata.json), a run folder or its checkpoints/ folder; found {names}")


# ----------------------------------------------------------------- finding the env
def _run_config(path: Path) -> Optional[tuple[Path, dict]]:
    """The config.json (or the older run.json) of the run folder at or above `path`, read, else None."""
    for folder in (path, *path.parents):
        run_folder = (folder / "checkpoints").is_dir() or (folder / "metrics.csv").is_file()
        for name in ("config.json", "run.json"):
            file = folder / name
            if not file.is_file():
                continue
            try:
                data = json.loads(file.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                if not run_folder:
                    continue  # some other program's file, not a run folder's
                raise UsageError(f"Cannot read the run's {str(file)!r} to find the env: {err}; expected the JSON "
                                 f"`train` writes (or pass --env)") from None
            if isinstance(data, dict) and ("env" in data or "flags" in data or "args" in data):
                return file, data
            if run_folder:
                raise UsageError(f"{str(file)!r} must be a JSON object with the run's env or flags (as `train` writes); "
                                 f"got {type(data).__name__} {str(data)[:80]}")
    return None


def _env_from_run(file: Path, data: dict) -> Optional[EnvSpec]:
    """The env of a run folder's config.json (resolved settings, else the flags) or run.json."""
    from jaxrl_modules.cli.envs import env_id_for_config, parse_key_values

    flags = data.get("flags", data.get("args"))
    flags = flags if isinstance(flags, dict) else {}
    settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    env = data.get("env") if isinstance(data.get("env"), str) else None
    if env is None and isinstance(flags.get("env"), str):
        env = env_id_for_config(flags["env"], bool(flags.get("atari")))
    if env is None:
        return None
    env_config = settings.get("env_config")
    if not isinstance(env_config, dict):
        items = flags.get("env_config") or []
        env_config = parse_key_values(items, "--env-config") if isinstance(items, list) else {}
    flatten = bool(flags.get("flatten_obs"))
    connector = {"class": "FlattenObservations",
                 "path": "jaxrl_modules.connectors.flatten_observations:FlattenObservations"} if flatten else None
    return EnvSpec(env, env_config, f"the run's {file.name}", bool(settings.get("normalize_actions", True)),
                   bool(settings.get("clip_actions", False)), connector)


def _recorded_env(entry: dict) -> Optional[str]:
    """The env to make from algorithm.json's entry: the id, or the creator's import path when the id
    is not resolvable here (a class or creator, or a register_env name this process lacks)."""
    from jaxrl_modules.envs.registry import _ENV_CREATORS

    if entry["id"] is not None and (entry["creator"] is None or entry["id"] in _ENV_CREATORS):
        return entry["id"]
    return entry["creator"]


def find_env(meta: Optional[dict], ckpt: Path, env_flag: Optional[str]) -> EnvSpec:
    """The env: algorithm.json's "env" entry (`--env` replaces its id), else `--env`, else the run folder's."""
    entry = (meta or {}).get("env")
    if entry is not None:
        recorded = _recorded_env(entry)
        if recorded is None and env_flag is None:
            raise UsageError(f"Checkpoint {str(ckpt)!r} was trained on an env that cannot be rebuilt by name (an env class "
                             f"or creator that is not importable); pass --env with a gymnasium id or 'package.module:Class'")
        if entry["env_config"] is None and env_flag is None:
            raise UsageError(f"Checkpoint {str(ckpt)!r} was trained with an env_config that is not JSON "
                             f"({entry.get('env_config_repr', '?')}), so evaluate cannot rebuild its env; pass --env")
        same = env_flag is None or env_flag == recorded
        return EnvSpec(env_flag or recorded, dict(entry["env_config"] or {}) if same else {},
                       "algorithm.json" if env_flag is None else "--env", entry["normalize_actions"], entry["clip_actions"],
                       entry["connector"], entry["multi_agent"], entry["agent_to_module"])
    if env_flag is not None:
        return EnvSpec(env_flag, {}, "--env")
    run = _run_config(ckpt)
    spec = _env_from_run(*run) if run is not None else None
    if spec is None:
        what = "module checkpoint" if meta is None else "checkpoint (its algorithm.json predates the env entry)"
        raise UsageError(f"Cannot tell which env the {what} {str(ckpt)!r} was trained on (no run folder above it names "
                         f"one); pass --env")
    return spec


def _connector_factory(spec: EnvSpec) -> Any:
    """`config.env_to_module_connector` for the recorded connector (None when none); a UsageError
    for a connector evaluate cannot rebuild."""
    if spec.connector is None:
        return None
    path = spec.connector.get("path")
    if not isinstance(path, str) or not path.startswith(CONNECTOR_PACKAGE) or ":" not in path:
        raise UsageError(f"The checkpoint was trained with the env-to-module connector {path or spec.connector.get('class')!r}, "
                         f"which evaluate cannot rebuild (it rebuilds the connectors of jaxrl_modules.connectors, e.g. "
                         f"FlattenObservations); evaluate it from Python with the algorithm's evaluate()")
    module, name = path.split(":", 1)
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise UsageError(f"Cannot import the checkpoint's connector {path!r}: {err}") from None
    return lambda env: cls()


# ----------------------------------------------------------------- recording
def check_record(out: Optional[str]) -> Optional[Path]:
    """The `--record` path, checked before anything is rolled out: a .gif or .mp4 in a writable
    folder, with the writer installed."""
    if out is None:
        return None
    path = Path(out)
    suffix = path.suffix.lower()
    if path.is_dir():
        raise UsageError(f"--record must name a .gif or .mp4 file to write; got {out!r}, a directory")
    if suffix not in RECORD_WRITERS:
        raise UsageError(f"--record must name a .gif or .mp4 file; got {out!r}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        why = "does not exist" if not folder.exists() else "is not a writable directory"
        raise UsageError(f"--record {out!r}: its folder {str(folder)!r} {why}; expected a path in a writable directory")
    module, package = RECORD_WRITERS[suffix]
    if importlib.util.find_spec(module) is None:
        raise UsageError(f"--record {out!r}: writing {suffix} files needs the {package} package, which is not installed "
                         f"(pip install {package})")
    return path


def _write_frames_to(path: Path, frames: list, fps: float) -> None:
    """The frames as the .gif or .mp4 file `path` (imageio picks the format by the suffix)."""
    import imageio.v3 as iio
    import numpy as np

    if path.suffix.lower() == ".gif":
        iio.imwrite(path, np.stack(frames), duration=1000.0 / fps, loop=0)
    else:
        with warnings.catch_warnings():  # ffmpeg runs in a subprocess, which JAX warns about (harmless here)
            warnings.filterwarnings("ignore", message=".*os.fork", category=RuntimeWarning)
            iio.imwrite(path, np.stack(frames), fps=fps, macro_block_size=2)  # even sizes, as yuv420p needs


def write_frames(path: Path, frames: list, fps: float) -> None:
    """Writes `path` whole or not at all: the frames go to a temporary file in the same folder, renamed
    to `path` once complete, so an error or Ctrl-C while writing leaves no partial file (and keeps an
    older file at `path` as it was)."""
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        _write_frames_to(tmp, frames, fps)
        os.replace(tmp, path)
    except (OSError, ValueError) as err:
        raise UsageError(f"--record {str(path)!r}: cannot write the frames: {err}") from None
    finally:
        tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------- rolling out
def _load(module_dir: Path) -> tuple[Any, Any]:
    from jaxrl_modules.rl_module import RLModule

    try:
        return RLModule.from_checkpoint(module_dir)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None


def _module_ids(ckpt: Path) -> list[str]:
    from jaxrl_modules.algorithms.algorithm import COMPONENT_PREFIX

    folder = ckpt / COMPONENT_PREFIX
    mids = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not mids:
        raise UsageError(f"Checkpoint {str(ckpt)!r} holds no module under {COMPONENT_PREFIX}/; expected one folder per module")
    return mids


def _rollout(kind: str, ckpt: Path, spec: EnvSpec, args: argparse.Namespace, frames: Optional[list]) -> list[float]:
    from jaxrl_modules.algorithms.algorithm import COMPONENT_PREFIX
    from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig
    from jaxrl_modules.envs.registry import is_gymnax
    from jaxrl_modules.columns import DEFAULT_MODULE_ID

    config = AlgorithmConfig().environment(spec.env, env_config=spec.env_config, normalize_actions=spec.normalize_actions,
                                           clip_actions=spec.clip_actions)
    connector = _connector_factory(spec)
    if connector is not None:
        config.env_runners(env_to_module_connector=connector)
    if spec.multi_agent:
        return _rollout_multi(config, ckpt, spec, args)
    module, params = _load(ckpt / COMPONENT_PREFIX / DEFAULT_MODULE_ID if kind == "algorithm" else ckpt)
    if is_gymnax(spec.env):
        return _rollout_gymnax(config, module, params, args)
    from jaxrl_modules.algorithms.env_runner import evaluate_policy

    return evaluate_policy(config, module, params, args.episodes, args.seed, stochastic=args.stochastic, frames=frames)


def _rollout_gymnax(config: Any, module: Any, params: Any, args: argparse.Namespace) -> list[float]:
    from jaxrl_modules.algorithms.action_transform import make_env_action_fn
    from jaxrl_modules.algorithms.jax_evaluate import evaluate_gymnax
    from jaxrl_modules.envs.registry import make_gymnax
    from jaxrl_modules.envs.gymnax_spaces import to_gymnasium

    env, env_params = make_gymnax(config.env, config.env_config)
    obs_space, act_space = to_gymnasium(env.observation_space(env_params)), to_gymnasium(env.action_space(env_params))
    obs_fn = None
    if config.env_to_module_connector is not None:
        obs_fn = config.env_to_module_connector(env)
        obs_fn.set_spaces(obs_space, act_space)
    to_env = make_env_action_fn(act_space, config.normalize_actions, config.clip_actions)
    return evaluate_gymnax(env, env_params, module, params, args.episodes, seed=args.seed, stochastic=args.stochastic,
                           obs_fn=obs_fn, to_env=to_env)


def _rollout_multi(config: Any, ckpt: Path, spec: EnvSpec, args: argparse.Namespace) -> list[float]:
    import jax

    from jaxrl_modules.algorithms.algorithm import COMPONENT_PREFIX
    from jaxrl_modules.algorithms.jax_evaluate import exploration_kwargs
    from jaxrl_modules.algorithms.jaxmarl_runner import is_jaxmarl, make_jaxmarl
    from jaxrl_modules.algorithms.multi_agent_env_runner import evaluate_multi_agent

    mids = _module_ids(ckpt)
    loaded = {mid: _load(ckpt / COMPONENT_PREFIX / mid) for mid in mids}
    phase = "exploration" if args.stochastic else "inference"
    fwds = {mid: (m.phase_fn(phase), exploration_kwargs(m) if args.stochastic else {}) for mid, (m, _) in loaded.items()}

    def act(params: dict, batch: dict, key: jax.Array) -> dict:
        return {mid: fn(params[mid], batch[mid], jax.random.fold_in(key, i), **kw)
                for i, (mid, (fn, kw)) in enumerate(fwds.items())}

    if spec.agent_to_module is not None:
        table = {agent: mid for agent, mid in spec.agent_to_module}
    elif len(mids) == 1:
        table = None
    else:
        raise UsageError(f"Checkpoint {str(ckpt)!r} has modules {mids} but no agent-to-module mapping in algorithm.json; "
                         f"evaluate it from Python with the algorithm's evaluate()")

    def mapping(agent: Any, episode: int) -> str:
        if table is None:
            return mids[0]
        if agent not in table:
            raise UsageError(f"Agent {agent!r} of env {spec.env!r} is not in the checkpoint's agent-to-module mapping "
                             f"{spec.agent_to_module}")
        return table[agent]

    params = {mid: p for mid, (_, p) in loaded.items()}
    if is_jaxmarl(spec.env):  # every episode in one jitted loop over vmapped JaxMARL envs
        from jaxrl_modules.algorithms.jaxmarl_runner import JaxMarlRunner

        env = make_jaxmarl(spec.env, spec.env_config)
        reads = any(getattr(type(m), "reads_global_state", False) for m, _ in loaded.values())
        runner = JaxMarlRunner(env, args.episodes, {a: mapping(a, 0) for a in env.agents}, mids, global_state=reads)
        if config.env_to_module_connector is not None:  # the connector the run trained with, as JitLoop binds it
            connector = config.env_to_module_connector(env)
            connector.set_spaces(runner.observation_space, runner.action_space)
            runner.obs_fn = connector
        return runner.evaluate(act, params, args.episodes, seed=args.seed)
    return evaluate_multi_agent(config, act, params, mids, args.episodes, args.seed, mapping_fn=mapping)


def _evaluate_one(kind: str, ckpt: Path, args: argparse.Namespace, record: Optional[Path], frames: Optional[list],
                  label: str = "") -> tuple[EnvSpec, list[float]]:
    """Finds the env of one (algorithm or module) checkpoint, prints it and rolls the checkpoint out."""
    from jaxrl_modules.algorithms.algorithm import _read_algorithm_json
    from jaxrl_modules.envs.registry import is_gymnax

    meta = None
    # a module checkpoint inside an algorithm checkpoint (learner_group/learner/rl_module/<id>) takes its env from it
    holder = ckpt if kind == "algorithm" else next((p for p in list(ckpt.parents)[:4] if (p / "algorithm.json").is_file()), None)
    if holder is not None:
        try:
            meta = _read_algorithm_json(holder)
        except ValueError as err:
            raise UsageError(str(err)) from None
    spec = find_env(meta, ckpt, args.env)
    if kind == "module" and spec.multi_agent:
        raise UsageError(f"{str(ckpt)!r} is one module of the multi-agent checkpoint {str(holder)!r}; evaluate that "
                         f"checkpoint (its agents act through their modules)")
    if record is not None and (is_gymnax(spec.env) or spec.multi_agent):
        what = "a gymnax env (evaluated in one jit, without a renderer)" if is_gymnax(spec.env) else "a multi-agent env"
        raise UsageError(f"--record renders single-agent gymnasium envs; {spec.env!r} is {what}")
    if not label:
        connector = f", connector {spec.connector.get('class')}" if spec.connector else ""
        env_config = f" with env_config {spec.env_config}" if spec.env_config else ""
        print(f"env: {spec.env}{env_config} (from {spec.source}{connector})", flush=True)
    try:
        returns = _rollout(kind, ckpt, spec, args, frames)
    except (TypeError, ValueError, KeyError) as err:
        raise UsageError(f"Cannot evaluate {str(ckpt)!r} on env {spec.env!r}: {err}") from None
    return spec, returns


def _summary(returns: list[float]) -> str:
    import numpy as np

    return f"{np.mean(returns):.1f} (min {np.min(returns):.1f}, max {np.max(returns):.1f}"


def evaluate(args: argparse.Namespace) -> int:
    """Rolls the checkpoint out for `--episodes` episodes and prints the mean return (min, max); a
    multi-seed checkpoint (`train --num-seeds N`) is rolled out seed by seed."""
    from jaxrl_modules.cli.config_build import check_seed

    check_positive("--episodes", args.episodes)  # before anything is loaded
    check_seed("--seed", args.seed)
    record = check_record(args.record)
    kind, ckpt, note = find_checkpoint(Path(args.checkpoint))
    print(f"checkpoint: {ckpt} ({note})", flush=True)
    frames: Optional[list] = [] if record is not None else None
    mode = "sampled" if args.stochastic else "deterministic"
    if (ckpt / MULTI_SEED_JSON).is_file():
        seeds = _seed_checkpoints(ckpt)
        spec, returns = _evaluate_one("algorithm", seeds[0], args, record, frames)
        per_seed = [returns] + [_evaluate_one("algorithm", p, args, None, None, p.name)[1] for p in seeds[1:]]
        for path, seed_returns in zip(seeds, per_seed):
            print(f"{path.name}: mean return over {len(seed_returns)} episodes: {_summary(seed_returns)})")
        returns = [r for seed_returns in per_seed for r in seed_returns]
        print(f"mean return over {len(returns)} episodes ({len(seeds)} seeds): {_summary(returns)}; {mode} actions, "
              f"seed {args.seed})")
    else:
        spec, returns = _evaluate_one(kind, ckpt, args, record, frames)
        print(f"mean return over {len(returns)} episodes: {_summary(returns)}; {mode} actions, seed {args.seed})")
    if record is not None:
        from jaxrl_modules.envs.registry import make_env

        env = make_env(spec.env, spec.env_config)
        fps = float((getattr(env, "metadata", None) or {}).get("render_fps") or 30)
        env.close()
        write_frames(record, frames, fps)
        print(f"recorded the first episode ({len(frames)} frames) to {record}")
    return 0
