"""The run folder of `jaxrl-modules train` and what it holds:

    runs/<name>/config.json          the resolved config, the command and its flags (written before training)
    runs/<name>/metrics.csv          one flushed row per iteration (see `metrics_log.py`)
    runs/<name>/tensorboard/         TensorBoard event files
    runs/<name>/learning_curve.png   the curve (drawn when the run ends)
    runs/<name>/run.json             a summary (algo, env, iterations, final return, how the run ended)
    runs/<name>/checkpoints/<iteration>/algorithm/   algorithm checkpoints, kept by an orbax CheckpointManager

config.json: `command` and `flags` are the command that started the run (kept as they are on every
resume), `resumed` the command line of each `--resume` (in order), `run_flags` the run-control flags in
effect for the latest command (`RESUME_FLAGS`), `settings` the resolved settings the algorithm reads
(`unused_settings` names those it does not read, left out, and why), `model_config` the full model config.

`--resume runs/<name>` rebuilds the config from the stored flags and restores the latest checkpoint.
`--overwrite` deletes a folder only when `train` wrote all of it (`not_from_train`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

from jaxrl_modules.cli.parser import PROG, UsageError, build_parser

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
CURVE_FILE = "learning_curve.png"
RUN_FILE = "run.json"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR = "checkpoints"
ITEM = "algorithm"  # checkpoints/<iteration>/algorithm/ holds the algorithm checkpoint
EVAL_COLUMN = "evaluation/episode_return_mean"
KEEP_LATEST = 3  # checkpoints kept besides the best by EVAL_COLUMN

# Flags `--resume` may change (run control); every other flag would change the config the checkpoint was made with.
RESUME_FLAGS = ("iterations", "stop_reward", "log_every", "quiet", "checkpoint_every", "eval_every", "eval_episodes")
_NOT_FLAGS = ("command", "argv", "resume", "overwrite", "coordinator", "num_processes", "process_id")


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


# what `train` writes into a run folder (the .tmp files only for a moment, replaced atomically)
TRAIN_FILES = (CONFIG_FILE, METRICS_FILE, RUN_FILE, CURVE_FILE, CONFIG_FILE + ".tmp", METRICS_FILE + ".tmp")
TRAIN_DIRS = (TENSORBOARD_DIR, CHECKPOINT_DIR)
CONFIG_KEYS = ("command", "flags", "settings", "config_class")  # keys every config.json of `train` has
_STEP_DIR = re.compile(r"^\d+(\.orbax-checkpoint-tmp-\d+)?$")  # checkpoints/<iteration> (and orbax's unfinished ones)


def _config_problem(path: Path) -> Optional[str]:
    """Why `path` (a config.json) is not one `train` wrote, or None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{CONFIG_FILE} (not JSON)"
    if not isinstance(data, dict):
        return f"{CONFIG_FILE} (not a JSON object)"
    missing = [k for k in CONFIG_KEYS if k not in data]
    if missing:
        return f"{CONFIG_FILE} (not train's: no {', '.join(repr(k) for k in missing)})"
    if not isinstance(data["flags"], dict) or not isinstance(data["command"], list) or data["command"][:1] != [PROG]:
        return f"{CONFIG_FILE} (not train's: its 'command' is not a `{PROG}` command or 'flags' not a dict)"
    return None


def not_from_train(path: Path) -> list[str]:
    """What in the folder `path` `train` did not write: [] for a run folder `train` wrote (its own config.json,
    and nothing besides `TRAIN_FILES`, `TRAIN_DIRS` and their usual contents). Links are never train's."""
    found: list[str] = []
    if not (path / CONFIG_FILE).is_file() or (path / CONFIG_FILE).is_symlink():
        found.append(f"no {CONFIG_FILE}")
    else:
        found += [p for p in [_config_problem(path / CONFIG_FILE)] if p]
    for entry in sorted(path.iterdir()):
        name = entry.name
        if entry.is_symlink():
            found.append(f"{name} (a link)")
        elif name in TRAIN_FILES and entry.is_file() or name in TRAIN_DIRS and entry.is_dir():
            if name == TENSORBOARD_DIR:
                found += [f"{name}/{e.name}" for e in sorted(entry.iterdir())
                          if e.is_symlink() or not e.is_file() or not e.name.startswith("events.out.tfevents.")]
            elif name == CHECKPOINT_DIR:
                found += [f"{name}/{e.name}" for e in sorted(entry.iterdir())
                          if e.is_symlink() or not e.is_dir() or not _STEP_DIR.match(e.name)]
        else:
            found.append(name + ("/" if entry.is_dir() else ""))
    return found


def _listing(items: list[str], most: int = 5) -> str:
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


def check_name(name: Optional[str]) -> None:
    """`--name` is one folder name: not empty, no path separator, not `.`/`..`, no NUL, at most 255 bytes."""
    if name is None:
        return
    seps = {"/", os.sep, os.altsep or "/"}
    if not name.strip() or any(s in name for s in seps) or name in (".", "..") or "\0" in name \
            or len(name.encode("utf-8", "surrogateescape")) > 255:
        raise UsageError(f"--name must be one folder name inside --runs-dir (not empty, no path separator, not '.' or "
                         f"'..', at most 255 bytes); got {name!r}")


def check_runs_dir(runs_dir: str) -> None:
    """`--runs-dir` is a folder path (created when missing): not empty, and no part of it an existing file."""
    if not str(runs_dir).strip() or "\0" in str(runs_dir):
        raise UsageError(f"--runs-dir must be a directory path (created when missing); got {runs_dir!r}")
    path = Path(runs_dir)
    for part in [path, *path.parents]:
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                what = "is" if part == path else f"is inside {str(part)!r}, which is"
                kind = "a file" if part.is_file() else "a broken link" if part.is_symlink() else "something"
                raise UsageError(f"--runs-dir {runs_dir!r} {what} {kind}, not a folder: no run directory can be made "
                                 f"there; expected a directory path (created when missing)")
            return


def has_checkpoint(run_dir: Path) -> Optional[int]:
    """The latest finished checkpoint's iteration in `run_dir` (checkpoints/<iteration>/algorithm), or None.
    Reads the folder only (nothing is created)."""
    directory = run_dir / CHECKPOINT_DIR
    if not directory.is_dir():
        return None
    steps = [int(p.name) for p in directory.iterdir() if p.name.isdigit() and (p / ITEM).is_dir()]
    return max(steps, default=None)


def check_new_run_dir(run_dir: Path, overwrite: bool, runs_dir: str) -> None:
    """Refuses a `run_dir` that exists (a file, a link, or a non-empty folder), unless `overwrite` and `train`
    wrote all of it (`not_from_train`)."""
    check_runs_dir(runs_dir)
    where = str(run_dir)
    if run_dir.is_symlink() or (run_dir.exists() and not run_dir.is_dir()):
        what = "a link" if run_dir.is_symlink() else "a file"
        raise UsageError(f"{where!r} (--runs-dir {runs_dir!r}, --name {run_dir.name!r}) is {what}, not a run folder; "
                         f"expected a new --name or another --runs-dir")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return  # nothing there, or an empty folder: nothing to lose
    foreign = not_from_train(run_dir)
    if foreign:
        deleted = " (--overwrite deletes only a folder `train` wrote all of; nothing was deleted)" if overwrite else ""
        raise UsageError(f"The folder {where!r} exists and is not a run folder of `{PROG} train`: it has "
                         f"{_listing(foreign)}{deleted}; expected a new --name or another --runs-dir")
    if not overwrite:
        resume = f", --resume {where} to continue that run" if has_checkpoint(run_dir) is not None else ""
        raise UsageError(f"The run folder {where!r} already exists; expected a new --name{resume}, or --overwrite to "
                         f"replace it")


def make_run_dir(run_dir: Path, runs_dir: str, overwrite: bool) -> None:
    """Creates `run_dir` (after `check_new_run_dir`, checked again: the folder may have changed meanwhile),
    replacing an old run folder when `overwrite`."""
    check_new_run_dir(run_dir, overwrite, runs_dir)
    try:
        if overwrite and run_dir.is_dir() and any(run_dir.iterdir()):
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"Cannot create the run directory {str(run_dir)!r} (--runs-dir {runs_dir!r}, --name): "
                         f"{err.strerror or err}; expected a directory path") from None


# ----------------------------------------------------------------- config.json
def _jsonable(value: Any) -> Any:
    """`value` as JSON: callables by their qualified name, other objects by repr, NaN/inf as strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    return repr(value)


def unused_settings(config: Any) -> dict:
    """Settings of `config` the algorithm does not read, with why: every algorithm's batch is
    `train_batch_size_per_learner` when it is set (`AlgorithmConfig.batch_size()`), else `train_batch_size`."""
    per_learner = getattr(config, "train_batch_size_per_learner", None)
    if per_learner is not None and "train_batch_size" in config.settings_table():
        return {"train_batch_size": f"not read: train_batch_size_per_learner ({per_learner}) is the train batch size"}
    return {}


def resolved_config(config: Any) -> dict:
    """Every setting of `config.settings_table()` the algorithm reads (`unused_settings` are left out and listed)
    and the full model config: the module's typed config (its `model_config_class`, e.g. DQN's with
    double_q/dueling/epsilon), every field, missing keys filled with defaults."""
    from jaxrl_modules.model_config import DefaultModelConfig

    unused = unused_settings(config)
    settings = {key: _jsonable(getattr(config, key, None)) for key in sorted(config.settings_table()) if key not in unused}
    merged = config.merged_model_config()
    spec = getattr(config, "rl_module_spec", None)
    module_cls = getattr(spec, "module_class", None)
    if module_cls is None:
        try:
            module_cls = config.get_default_rl_module_spec().module_class
        except NotImplementedError:
            module_cls = None
    config_cls = getattr(module_cls, "model_config_class", None)
    try:
        if config_cls is not None:
            model = config_cls.from_any(merged)
        else:
            model = DefaultModelConfig.from_any(merged, extra_keys=tuple(config.model_config_auto_includes))
    except (TypeError, ValueError):
        model = merged  # a custom module's own keys: stored as given
    return {"config_class": type(config).__name__, "env": _jsonable(config.env), "settings": settings,
            "unused_settings": unused, "model_config": _jsonable(model)}


def write_config(run_dir: Path, config: Any, args: argparse.Namespace, stored: Optional[dict] = None) -> None:
    """Writes config.json: the resolved config, the command and its parsed flags, and the run-control flags in
    effect (`run_flags`). On a resume (`stored`: the run's config.json) the first command and its flags are kept
    and this command is appended to `resumed`."""
    command = [PROG, *getattr(args, "argv", [])]
    run_flags = _jsonable({dest: getattr(args, dest) for dest in RESUME_FLAGS})
    if stored is None:
        flags = {k: v for k, v in vars(args).items() if k not in ("argv", "command")}
        first = {"command": command, "flags": _jsonable(flags), "resumed": []}
    else:
        first = {"command": stored["command"], "flags": stored["flags"], "resumed": [*stored.get("resumed", []), command]}
    data = {"command": first["command"], "flags": first["flags"], "run_flags": run_flags, **resolved_config(config),
            "resumed": first["resumed"]}
    tmp = run_dir / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(run_dir / CONFIG_FILE)


def read_config(run_dir: Path) -> dict:
    path = run_dir / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"--resume {str(run_dir)!r}: cannot read {str(path)!r} ({err}); expected the config.json "
                         f"`{PROG} train` writes") from None
    problem = _config_problem(path)
    if problem is not None or not isinstance(data.get("resumed", []), list) \
            or not isinstance(data.get("run_flags", {}), dict):
        raise UsageError(f"--resume {str(run_dir)!r}: {str(path)!r} is not the config.json `{PROG} train` writes "
                         f"({problem or 'its resumed or run_flags has the wrong type'}); expected a run folder of "
                         f"`{PROG} train`")
    return data


# ----------------------------------------------------------------- --resume
def given_flags(args: argparse.Namespace) -> set[str]:
    """The train flags given on the command line (not left at their defaults)."""
    parser = build_parser("")
    train_parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    argv = getattr(args, "argv", None)
    if argv is None:  # a Namespace built by hand: the flags that differ from their defaults
        return {a.dest for a in train_parser._actions if a.dest != "help" and getattr(args, a.dest, a.default) != a.default}
    for action in train_parser._actions:
        action.default = argparse.SUPPRESS  # a flag not given leaves no attribute
    return set(vars(parser.parse_args(argv))) - {"command", "argv"}


def _normal(value: Any) -> Any:
    """Tuples as lists, recursively (a JSON round trip makes them lists)."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def _same(dest: str, now: Any, before: Any) -> bool:
    """Whether a flag given on `--resume` means what the stored one does: `--config`/`--env-config` by their
    parsed key -> value dicts (order and spelling aside), `--runs-dir` as paths, others by value."""
    from jaxrl_modules.cli.config_build import parse_overrides

    if dest in ("config", "env_config"):
        return _normal(parse_overrides(list(now or []), flag(dest))) == _normal(parse_overrides(list(before or []), flag(dest)))
    if dest == "runs_dir" and isinstance(now, str) and isinstance(before, str):
        return Path(now) == Path(before)
    return _normal(now) == _normal(before)


def resume_args(args: argparse.Namespace) -> tuple[argparse.Namespace, dict]:
    """The flags of the run in `args.resume` (its config.json: the first command's flags, then the run-control
    flags in effect, `run_flags`) with the run-control flags given now (`RESUME_FLAGS`); any other flag given
    must mean what the stored one does (`_same`). The run must hold a checkpoint before the new `--iterations`.
    Reads the folder only. Also returns config.json."""
    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        got = "a file" if run_dir.exists() else "nothing"
        raise UsageError(f"--resume {args.resume!r}: expected a run folder written by `{PROG} train` (runs/<name>); "
                         f"got {got} there")
    if not (run_dir / CONFIG_FILE).is_file():
        raise UsageError(f"--resume {args.resume!r} is not a run folder: it has no {CONFIG_FILE}; expected a folder written "
                         f"by `{PROG} train` (runs/<name>)")
    if args.overwrite:
        raise UsageError("--overwrite and --resume exclude each other: --resume continues the run folder, --overwrite "
                         "replaces it")
    data = read_config(run_dir)
    stored = data["flags"]
    parser_defaults = vars(build_parser("").parse_args(["train"]))
    given = given_flags(args) - set(_NOT_FLAGS)
    for dest in sorted(given - set(RESUME_FLAGS)):
        before = stored.get(dest, parser_defaults.get(dest))
        if not _same(dest, getattr(args, dest), before):
            raise UsageError(f"{flag(dest)} cannot change on --resume: the run in {str(run_dir)!r} was started with "
                             f"{flag(dest)} {before!r}; got {getattr(args, dest)!r} (flags that may change: "
                             f"{', '.join(flag(d) for d in RESUME_FLAGS)})")
    merged = {**parser_defaults, **{k: v for k, v in stored.items() if k in parser_defaults}}
    merged.update({k: v for k, v in data.get("run_flags", {}).items() if k in RESUME_FLAGS})
    merged.update({dest: getattr(args, dest) for dest in given & set(RESUME_FLAGS)})
    merged.update(command="train", resume=str(run_dir), overwrite=False, argv=getattr(args, "argv", []),
                  **{dest: getattr(args, dest, None) for dest in ("coordinator", "num_processes", "process_id")})
    step = has_checkpoint(run_dir)
    if step is None:
        raise UsageError(f"--resume {str(run_dir)!r} holds no checkpoint; expected {CHECKPOINT_DIR}/<iteration>/{ITEM} "
                         f"written by `{PROG} train` (the run stopped before its first one was saved)")
    if isinstance(merged["iterations"], int) and step >= merged["iterations"]:
        raise UsageError(f"--iterations {merged['iterations']}: the run in {str(run_dir)!r} already has {step} "
                         f"iterations (its latest checkpoint); expected a larger --iterations to continue it")
    return argparse.Namespace(**merged), data


# ----------------------------------------------------------------- checkpoints
def _handler_classes() -> tuple[type, type, type]:
    """orbax's CheckpointHandler for algorithms, with its save and restore args (defined once, on first use)."""
    global _HANDLER
    if _HANDLER is not None:
        return _HANDLER
    import orbax.checkpoint as ocp

    from jaxrl_modules.distributed import is_primary

    class AlgorithmCheckpointHandler(ocp.CheckpointHandler):
        """Writes/reads an algorithm checkpoint (`Algorithm.write_checkpoint` / `restore_from_path`) as a manager item."""

        def save(self, directory: Any, args: "AlgorithmSave") -> None:  # type: ignore[override]
            if args.writer is None:
                args.algorithm.write_checkpoint(Path(directory))
            elif is_primary():  # the state was gathered before the save (`Checkpoints.save`); process 0 writes
                args.writer(Path(directory))

        def restore(self, directory: Any, args: "AlgorithmRestore") -> Any:  # type: ignore[override]
            args.algorithm.restore_from_path(Path(directory))
            return args.algorithm

    @ocp.args.register_with_handler(AlgorithmCheckpointHandler, for_save=True)
    @dataclasses.dataclass
    class AlgorithmSave(ocp.args.CheckpointArgs):
        algorithm: Any
        writer: Any = None  # `Algorithm._checkpoint_writer()`, made on every process before the save

    @ocp.args.register_with_handler(AlgorithmCheckpointHandler, for_restore=True)
    @dataclasses.dataclass
    class AlgorithmRestore(ocp.args.CheckpointArgs):
        algorithm: Any

    _HANDLER = (AlgorithmCheckpointHandler, AlgorithmSave, AlgorithmRestore)
    return _HANDLER


_HANDLER: Optional[tuple] = None


class _NoMetricsNotice(logging.Filter):
    """Drops orbax's warning for a checkpoint saved without an evaluation return (most are, by design)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not provide metrics" not in record.getMessage()


def _eval_metric(metrics: Any) -> float:
    return float(metrics[EVAL_COLUMN])


class Checkpoints:
    """`runs/<name>/checkpoints/` through an orbax `CheckpointManager`: keeps the latest `KEEP_LATEST`
    checkpoints plus the best one by `evaluation/episode_return_mean` (checkpoints saved with it).
    `create=False` (a resume) opens an existing folder without writing anything."""

    def __init__(self, directory: Path, create: bool = True):
        import orbax.checkpoint as ocp
        from orbax.checkpoint import checkpoint_managers as managers

        self.directory = Path(directory)  # as given (the paths printed); orbax gets the absolute path
        absl_logger = logging.getLogger("absl")
        if not any(isinstance(f, _NoMetricsNotice) for f in absl_logger.filters):
            absl_logger.addFilter(_NoMetricsNotice())
        _, self._save_args, self._restore_args = _handler_classes()
        keep = managers.AnyPreservationPolicy([
            managers.LatestN(n=KEEP_LATEST),
            managers.BestN(get_metric_fn=_eval_metric, n=1, keep_checkpoints_without_metrics=False)])
        import jax

        from jaxrl_modules.distributed import orbax_this_process

        # Each process's manager is its own (process 0's writes the run's checkpoints; see cli/processes.py);
        # orbax leaves creating the folder to us then.
        local = {"multiprocessing_options": orbax_this_process()} if jax.process_count() > 1 else {}
        if local and create:
            self.directory.mkdir(parents=True, exist_ok=True)
        options = ocp.CheckpointManagerOptions(best_fn=_eval_metric, best_mode="max", preservation_policy=keep,
                                               enable_async_checkpointing=False, create=create and not local, **local)
        self.manager = ocp.CheckpointManager(self.directory.absolute(), options=options, item_names=(ITEM,))

    def path(self, step: int) -> Path:
        """The algorithm checkpoint of `step` (loadable by `Algorithm.restore_from_path`)."""
        return self.directory / str(step) / ITEM

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def best_step(self) -> Optional[int]:
        """The step with the highest evaluation return, or None when no checkpoint has one."""
        return self.manager.best_step()

    def save(self, algorithm: Any, evaluation_return: Optional[float] = None) -> Path:
        """Saves the algorithm at its iteration (once per iteration); a finite `evaluation_return` ranks it for the best."""
        import orbax.checkpoint as ocp

        from jaxrl_modules.distributed import any_process

        step = int(algorithm.iteration)
        if step not in self.manager.all_steps():
            metrics = None
            if evaluation_return is not None and math.isfinite(evaluation_return):
                metrics = {EVAL_COLUMN: float(evaluation_return)}
            # Every collective of a save (gathering a multi-process state) runs here, on every process alike;
            # inside orbax only process 0 writes, and whatever fails there is then shared by one collective.
            make_writer = getattr(algorithm, "_checkpoint_writer", None)  # an Algorithm's; MultiSeedAlgorithm writes itself
            writer, error = (make_writer() if make_writer is not None else None), None
            try:
                self.manager.save(step, args=ocp.args.Composite(**{ITEM: self._save_args(algorithm, writer)}),
                                  metrics=metrics, force=True)
                self.manager.wait_until_finished()
            except Exception as err:  # re-raised below, once every process knows
                error = err
            if any_process(error is not None):
                raise error or RuntimeError(f"process 0 could not save checkpoint {step}; see its error")
        return self.path(step)

    def restore_latest(self, algorithm: Any) -> int:
        """Restores the latest checkpoint into `algorithm`; returns its iteration."""
        import orbax.checkpoint as ocp

        step = self.latest_step()
        if step is None:
            raise UsageError(f"--resume: {str(self.directory)!r} holds no checkpoint; expected checkpoints/<iteration>/"
                             f"{ITEM} written by `{PROG} train` (the run stopped before its first one was saved)")
        try:
            self.manager.restore(step, args=ocp.args.Composite(**{ITEM: self._restore_args(algorithm)}))
        except (ValueError, TypeError, OSError) as err:
            raise UsageError(f"--resume: cannot restore {str(self.path(step))!r}: {err}") from None
        return int(algorithm.iteration)

    def close(self) -> None:
        self.manager.close()
