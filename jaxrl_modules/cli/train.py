"""`jaxrl-modules train`: the training loop and the run folder it writes (see `run_folder.py`).

Every iteration appends a flushed row to metrics.csv and scalars to TensorBoard (`metrics_log.py`);
a checkpoint is saved every `--checkpoint-every` iterations, at every evaluation (`--eval-every`,
ranked by its return so the best is kept) and when the run ends: normally, at the stop reward, on
SIGINT/SIGTERM (exit code 130/143, after the iteration in progress; a second signal aborts that
iteration) or on a NaN/inf in training (exit code 1, the last finite state). `--resume RUN_DIR`
continues a run from its latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from jaxrl_modules.cli import run_folder as rf
from jaxrl_modules.cli.config_build import config_from_args
from jaxrl_modules.cli.metrics_log import RETURN, STEPS, MetricsLog, csv_row, seed_column
from jaxrl_modules.cli.parser import PROG, UsageError, check_positive
from jaxrl_modules.cli.plot import plot


def _finite(value: Any) -> Any:
    """`value` with every NaN/inf float replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class StopSignals:
    """While active, SIGINT and SIGTERM ask the loop to stop after the current iteration (`signum`);
    a second one inside `abortable()` raises KeyboardInterrupt to abort the iteration. The old
    handlers come back on exit. Off the main thread (where Python cannot install handlers) it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._abortable = False
        self._old: dict = {}
        self.shared = False  # a multi-process run: processes stop together, between iterations only
        self._extra = 0  # signals after the first (multi-process: the third exits at once)

    def __enter__(self) -> "StopSignals":
        import jax

        self.shared = jax.process_count() > 1
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            again = ("send it twice more to exit at once without saving" if self.shared
                     else "send it again to abort the iteration")
            print(f"\n{PROG}: {signal.Signals(signum).name}: stopping after this iteration and saving a checkpoint "
                  f"({again})", file=sys.stderr, flush=True)
        elif self._abortable and not self.shared:
            raise KeyboardInterrupt
        elif self.shared:  # a process alone must not leave an iteration the others are in: a third signal ends it
            self._extra += 1
            if self._extra >= 2:
                print(f"\n{PROG}: {signal.Signals(signum).name}: exiting now without saving", file=sys.stderr, flush=True)
                os._exit(128 + signum)

    def agreed(self) -> bool:
        """Whether to stop now: a signal arrived (on any process of a multi-process run, where every
        process must ask at the same point: it is a collective)."""
        if not self.shared:
            return self.signum is not None
        from jaxrl_modules.distributed import any_process

        if any_process(self.signum is not None):
            self.signum = self.signum or signal.SIGTERM
            return True
        return False

    @contextmanager
    def abortable(self) -> Iterator[None]:
        self._abortable = True
        try:
            yield
        finally:
            self._abortable = False

    def run(self, fn: Callable[[], Any]) -> tuple[Any, bool]:
        """`(fn(), False)`, or `(None, True)` when a second signal aborted it."""
        try:
            with self.abortable():
                return fn(), False
        except KeyboardInterrupt:
            if self.signum is None:
                raise  # a KeyboardInterrupt of our handlers' absence (not the main thread): not ours to handle
            return None, True


def _check_flags(args: argparse.Namespace) -> None:
    """The run-control flags, before anything is read or built."""
    check_positive("--iterations", args.iterations)
    check_positive("--log-every", args.log_every)
    check_positive("--checkpoint-every", args.checkpoint_every)
    check_positive("--eval-episodes", args.eval_episodes)
    check_positive("--num-seeds", args.num_seeds)
    if args.eval_every < 0:
        raise UsageError(f"--eval-every must be an int >= 0 (0: never evaluate); got {args.eval_every}")
    if args.stop_reward is not None and not math.isfinite(args.stop_reward):
        raise UsageError(f"--stop-reward must be a finite number (or left out: the env's reward threshold); "
                         f"got {args.stop_reward}")


def _build(config: Any, args: argparse.Namespace) -> Any:
    """The algorithm (`MultiSeedAlgorithm` for `--num-seeds` > 1); bad envs or spaces are UsageErrors."""
    if args.num_seeds > 1 and not str(args.env).startswith(("gymnax:", "jaxmarl:")):
        raise UsageError(f"--num-seeds {args.num_seeds} needs a gymnax or JaxMARL env (--env gymnax:<id> or jaxmarl:<name>, "
                         f"all seeds train in one jit); got --env {args.env!r}")
    try:
        if args.num_seeds > 1:
            from jaxrl_modules.algorithms.multi_seed import MultiSeedAlgorithm

            return MultiSeedAlgorithm(config, args.num_seeds)
        return config.build()
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None


def _check_evaluate(algo: Any, args: argparse.Namespace) -> None:
    """`--eval-every` on a run whose algorithm cannot evaluate is refused now, not mid-run."""
    try:
        algo.evaluate(1)
    except ValueError as err:
        raise UsageError(f"--eval-every {args.eval_every}: this run cannot evaluate ({err}); expected --eval-every 0") from None


def _stop_reward(args: argparse.Namespace) -> Optional[float]:
    if args.stop_reward is not None or str(args.env).startswith("gymnax:"):
        return args.stop_reward
    import gymnasium as gym

    try:
        return gym.spec(args.env).reward_threshold
    except gym.error.Error:
        return None


def _text(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):.1f}"


def train(args: argparse.Namespace) -> int:
    """Runs `jaxrl-modules train`; returns the exit code (0, 1 on NaN/inf, 130/143 on SIGINT/SIGTERM).
    With --coordinator/--num-processes/--process-id, one process of a multi-process run (`processes.py`)."""
    from jaxrl_modules.cli.processes import join, leave

    _check_flags(args)
    scratch = join(args)  # before anything touches a device
    try:
        if scratch is None:
            return _train(args)
        with open(os.devnull, "w") as quiet, redirect_stdout(quiet):  # process 0 reports; errors still go to stderr
            return _train(args)
    finally:
        leave(scratch)


def _train(args: argparse.Namespace) -> int:
    """Checks the command line on every process before any of them trains: one that refuses it stops
    them all (a multi-process run would otherwise wait on it forever)."""
    from jaxrl_modules.distributed import any_process

    error = None
    try:
        args, run_dir, stored, config = _prepare(args)
    except UsageError as err:
        error = err
    if any_process(error is not None):
        if error is not None:
            raise error
        raise UsageError("another process of this multi-process run refused the command line; see its error")
    with StopSignals() as stop:  # from here on SIGINT/SIGTERM end the command cleanly
        return _run(args, config, run_dir, stored, stop)


def _prepare(args: argparse.Namespace) -> tuple:
    """`(args, run_dir, stored config.json or None, config)` of a train command line; UsageError when bad."""
    from jaxrl_modules.cli.processes import copy_resumed_run

    copy_resumed_run(args)
    stored: Optional[dict] = None
    if args.resume is not None:
        args, stored = rf.resume_args(args)
        _check_flags(args)
        run_dir = Path(args.resume)
    else:
        rf.check_name(args.name)
        default = f"{args.algo}_{args.env.replace(':', '_').replace('/', '_')}_{time.strftime('%Y%m%d-%H%M%S')}"
        name = args.name if args.name is not None else default
        run_dir = Path(args.runs_dir) / name
        rf.check_new_run_dir(run_dir, args.overwrite, args.runs_dir)
    config = config_from_args(args)
    config.evaluation(evaluation_duration=args.eval_episodes)  # what `--eval-every` evaluations run (config.json)
    return args, run_dir, stored, config


def _run(args: argparse.Namespace, config: Any, run_dir: Path, stored: Optional[dict], stop: StopSignals) -> int:
    """Builds the algorithm, makes (or restores) the run folder, trains, saves and reports; returns the exit code."""
    from jaxrl_modules.algorithms.nonfinite import NonFiniteError

    algo, aborted = stop.run(lambda: _build(config, args))  # before any folder is made: a bad env leaves nothing behind
    if not aborted and args.eval_every:
        _, aborted = stop.run(lambda: _check_evaluate(algo, args))
    if aborted or stop.agreed():
        name = signal.Signals(stop.signum or signal.SIGINT).name
        print(f"{PROG}: stopped by {name} before training started; nothing was written", file=sys.stderr, flush=True)
        return 128 + int(stop.signum or signal.SIGINT)
    if stored is None:
        rf.make_run_dir(run_dir, args.runs_dir, args.overwrite)
    checkpoints, resume_at = rf.Checkpoints(run_dir / rf.CHECKPOINT_DIR, create=stored is None), None
    if stored is not None:
        try:
            resume_at = checkpoints.restore_latest(algo)
            if resume_at >= args.iterations:
                raise UsageError(f"--iterations {args.iterations}: the run in {str(run_dir)!r} already has {resume_at} "
                                 f"iterations (its latest checkpoint); expected a larger --iterations to continue it")
        except UsageError:
            checkpoints.close()
            raise
    rf.write_config(run_dir, config, args, stored)
    extra = [seed_column(i) for i in range(args.num_seeds if args.num_seeds > 1 else 0)]
    extra += [rf.EVAL_COLUMN] if args.eval_every else []
    log = MetricsLog(run_dir / rf.METRICS_FILE, run_dir / rf.TENSORBOARD_DIR, extra, resume_at)
    status, error, alone = "finished", None, False
    try:
        status = _loop(algo, args, log, checkpoints, stop, _stop_reward(args))
    except NonFiniteError as err:  # every process meets it at the same point (the metrics and params are shared)
        status, error = "nonfinite", err
    except BaseException:
        # An error of this process alone: in a multi-process run the others cannot join its last save (a
        # collective), so it exits without one and JAX's coordination service ends the others.
        alone = stop.shared
        raise
    finally:  # whatever ended the run (also an unexpected error): keep the last state, the metrics and the curve
        final = checkpoints.save(algo) if not alone else None
        best = checkpoints.best_step()
        checkpoints.close()
        log.close()
        curve = _draw(log.rows, run_dir, args)
        rows = log.rows
        summary = {"algo": args.algo, "env": args.env, "iterations": int(algo.iteration), "status": status,
                   "final_return": rows[-1][RETURN] if rows else None}
        (run_dir / rf.RUN_FILE).write_text(json.dumps(_finite(summary), indent=1, allow_nan=False))
    where = (f"run folder {run_dir}, checkpoint {final}, curve {curve or '(no iterations)'}, "
             f"TensorBoard logs {run_dir / rf.TENSORBOARD_DIR}")
    if error is not None:
        print(f"{PROG}: error: {error}; saved the last finite state: {where}", file=sys.stderr, flush=True)
        return 1
    if status == "interrupted":
        code = 128 + int(stop.signum or signal.SIGINT)
        print(f"{PROG}: stopped by {signal.Signals(code - 128).name} after iteration {algo.iteration}: {where}; "
              f"continue with `{PROG} train --resume {run_dir}`", flush=True)
        return code
    last = rows[-1] if rows else {}
    seeds = f" (summed over {args.num_seeds} seeds)" if args.num_seeds > 1 else ""
    print(f"trained {algo.iteration} iterations, {last.get(STEPS, 0)} env steps{seeds}, return {_text(last.get(RETURN))}"
          + (" (reached the stop reward)" if status == "stop reward" else ""))
    print(f"metrics: {run_dir / rf.METRICS_FILE}\ncurve:   {curve}\ncheckpoint: {final}")
    if best is not None:
        print(f"best checkpoint (evaluation return {_text(_eval_of(rows, best))}): {checkpoints.path(best)}")
    print(f"tensorboard: tensorboard --logdir {run_dir.parent}", flush=True)
    return 0


def _eval_of(rows: list[dict], iteration: int) -> Any:
    return next((r.get(rf.EVAL_COLUMN) for r in rows if int(r["iteration"]) == iteration), None)


def _draw(rows: list[dict], run_dir: Path, args: argparse.Namespace) -> Optional[Path]:
    if not rows:
        return None
    seeds = f", {args.num_seeds} seeds" if args.num_seeds > 1 else ""
    path = run_dir / rf.CURVE_FILE
    plot(rows, path, f"{args.algo.upper()} on {args.env}{seeds}")
    return path


def _loop(algo: Any, args: argparse.Namespace, log: MetricsLog, checkpoints: rf.Checkpoints, stop: StopSignals,
          stop_reward: Optional[float]) -> str:
    """Trains until `--iterations` (the total), the stop reward or a signal; returns how it ended."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    piped = not sys.stdout.isatty()  # a file or a pipe (cluster logs): plain lines instead of the progress bar
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("steps {task.fields[steps]:>8}"), TextColumn("return {task.fields[ret]:>7}"), TimeElapsedColumn()]
    last_log = (time.perf_counter(), log.last_steps)
    with Progress(*columns, disable=args.quiet or piped) as progress:
        task = progress.add_task(f"{args.algo} {args.env}", total=args.iterations, completed=algo.iteration,
                                 steps=log.last_steps, ret="-")
        while algo.iteration < args.iterations:
            if stop.agreed():  # every process stops after the same iteration
                return "interrupted"
            result, aborted = stop.run(algo.train)
            if aborted:
                return "interrupted"
            evaluation = None
            if args.eval_every and algo.iteration % args.eval_every == 0:
                evaluation, aborted = stop.run(lambda: algo.evaluate(args.eval_episodes))
            row = csv_row(result, evaluation)
            log.write(result, row)
            if evaluation is not None or algo.iteration % args.checkpoint_every == 0:
                checkpoints.save(algo, row.get(rf.EVAL_COLUMN))
            ret = row[RETURN]
            ret_text = _text(ret)
            progress.update(task, completed=algo.iteration, steps=row[STEPS], ret=ret_text)
            reached = stop_reward is not None and not math.isnan(ret) and ret >= stop_reward
            done = algo.iteration >= args.iterations or reached
            if piped and not args.quiet and (algo.iteration % args.log_every == 0 or done or aborted):
                now, steps = time.perf_counter(), row[STEPS]
                rate = (steps - last_log[1]) / max(now - last_log[0], 1e-9)
                evaluated = f"  evaluation {_text(row[rf.EVAL_COLUMN])}" if evaluation is not None else ""
                print(f"iteration {row['iteration']}/{args.iterations}  env steps {steps}  return {ret_text}{evaluated}  "
                      f"steps/s {rate:.0f}", flush=True)
                last_log = (now, steps)
            if aborted:
                return "interrupted"
            if reached:
                return "stop reward"
    return "interrupted" if stop.signum is not None else "finished"
