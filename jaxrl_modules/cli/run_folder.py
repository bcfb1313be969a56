"""The run folder of `jaxrl-modules train` and what it holds:

    runs/<name>/config.json          the resolved config, the command and its flags (written before training)
    runs/<name>/metrics.csv          one flushed row per iteration (see `metrics_log.py`)
    runs/<name>/tensorboard/         TensorBoard event files
    runs/<name>/learning_curve.png   the curve (drawn when the run ends)
    runs/<name>/run.json             a summary (algo, env, iterations, final return, how the run ended)
    runs/<name>/checkpoints/<iteration>/algorithm/   algorithm checkpoints, kept by an orbax CheckpointManager

`--resume runs/<name>` rebuilds the config from the stored flags and restores the latest checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
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
_NOT_FLAGS = ("command", "argv", "resume", "overwrite")


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def is_run_folder(path: Path) -> bool:
    """A folder `train` wrote: it has config.json or metrics.csv."""
    return path.is_dir() and ((path / CONFIG_FILE).is_file() or (path / METRICS_FILE).is_file())


def check_new_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuses an existing `run_dir` unless `overwrite` (then only a run folder, or an empty folder, may be replaced)."""
    if not run_dir.exists():
        return
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        return  # an empty folder holds nothing to lose
    if not overwrite:
        raise UsageError(f"The run folder {str(run_dir)!r} already exists; expected a new --name, or --resume {run_dir} to "
                         f"continue that run, or --overwrite to replace it")
    if not is_run_folder(run_dir):
        what = "a file" if not run_dir.is_dir() else f"a folder without {CONFIG_FILE} or {METRICS_FILE}"
        raise UsageError(f"--overwrite replaces run folders only; {str(run_dir)!r} is {what}, not a run folder written by "
                         f"`{PROG} train`: choose another --name or --runs-dir")


def make_run_dir(run_dir: Path, runs_dir: str, overwrite: bool) -> None:
    """Creates `run_dir` (after `check_new_run_dir`), replacing an old run folder when `overwrite`."""
    try:
        if overwrite and is_run_folder(run_dir):
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


def resolved_config(config: Any) -> dict:
    """Every setting of `config.settings_table()` and the full model config (missing keys filled with defaults)."""
    from jaxrl_modules.model_config import DefaultModelConfig

    settings = {key: _jsonable(getattr(config, key, None)) for key in sorted(config.settings_table())}
    merged = config.merged_model_config()
    try:
        model = DefaultModelConfig.from_any(merged, extra_keys=tuple(config.model_config_auto_includes))
    except (TypeError, ValueError):
        model = merged  # a custom module's own keys: stored as given
    return {"config_class": type(config).__name__, "env": _jsonable(config.env), "settings": settings,
            "model_config": _jsonable(model)}


def write_config(run_dir: Path, config: Any, args: argparse.Namespace, resumed: Optional[list] = None) -> None:
    """Writes config.json: the resolved config, the command, the parsed flags (and the resume commands)."""
    flags = {k: v for k, v in vars(args).items() if k not in ("argv", "command")}
    data = {"command": [PROG, *getattr(args, "argv", [])], "flags": _jsonable(flags), **resolved_config(config),
            "resumed": resumed or []}
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
    if not isinstance(data, dict) or not isinstance(data.get("flags"), dict):
        raise UsageError(f"--resume {str(run_dir)!r}: {str(path)!r} has no 'flags' dict; expected the config.json "
                         f"`{PROG} train` writes")
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


def resume_args(args: argparse.Namespace) -> tuple[argparse.Namespace, dict]:
    """The flags of the run in `args.resume` (its config.json) with the run-control flags given now
    (`RESUME_FLAGS`); any other flag that differs from the stored one is refused. Also returns config.json."""
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
        if getattr(args, dest) != before:
            raise UsageError(f"{flag(dest)} cannot change on --resume: the run in {str(run_dir)!r} was started with "
                             f"{flag(dest)} {before!r}; got {getattr(args, dest)!r} (flags that may change: "
                             f"{', '.join(flag(d) for d in RESUME_FLAGS)})")
    merged = {**parser_defaults, **{k: v for k, v in stored.items() if k in parser_defaults}}
    merged.update({dest: getattr(args, dest) for dest in given & set(RESUME_FLAGS)})
    merged.update(command="train", resume=str(run_dir), overwrite=False, argv=getattr(args, "argv", []))
    return argparse.Namespace(**merged), data


# ----------------------------------------------------------------- checkpoints
def _handler_classes() -> tuple[type, type, type]:
    """orbax's CheckpointHandler for algorithms, with its save and restore args (defined once, on first use)."""
    global _HANDLER
    if _HANDLER is not None:
        return _HANDLER
    import orbax.checkpoint as ocp

    class AlgorithmCheckpointHandler(ocp.CheckpointHandler):
        """Writes/reads an algorithm checkpoint (`Algorithm.write_checkpoint` / `restore_from_path`) as a manager item."""

        def save(self, directory: Any, args: "AlgorithmSave") -> None:  # type: ignore[override]
            args.algorithm.write_checkpoint(Path(directory))

        def restore(self, directory: Any, args: "AlgorithmRestore") -> Any:  # type: ignore[override]
            args.algorithm.restore_from_path(Path(directory))
            return args.algorithm

    @ocp.args.register_with_handler(AlgorithmCheckpointHandler, for_save=True)
    @dataclasses.dataclass
    class AlgorithmSave(ocp.args.CheckpointArgs):
        algorithm: Any

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
    checkpoints plus the best one by `evaluation/episode_return_mean` (checkpoints saved with it)."""

    def __init__(self, directory: Path):
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
        options = ocp.CheckpointManagerOptions(best_fn=_eval_metric, best_mode="max", preservation_policy=keep,
                                               enable_async_checkpointing=False, create=True)
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

        step = int(algorithm.iteration)
        if step not in self.manager.all_steps():
            metrics = None
            if evaluation_return is not None and math.isfinite(evaluation_return):
                metrics = {EVAL_COLUMN: float(evaluation_return)}
            self.manager.save(step, args=ocp.args.Composite(**{ITEM: self._save_args(algorithm)}), metrics=metrics,
                              force=True)
            self.manager.wait_until_finished()
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
