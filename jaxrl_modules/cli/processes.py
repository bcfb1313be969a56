"""Multi-process runs from the command line: `train --coordinator HOST:PORT --num-processes P
--process-id I` (or JAX's environment variables) joins a `jax.distributed` run, and `launch` starts P
such processes on this machine to try one locally.

Every process runs the same `train` command; process 0 owns the run folder (metrics, TensorBoard,
checkpoints, curve). The others follow the same code path in a private scratch copy of it, deleted at
the end, so that each collective (training steps, the gathering of a checkpoint's state) is entered
by every process while only process 0 writes where the user looks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from jaxrl_modules.cli.parser import UsageError, check_positive

ENV_FLAGS = {"coordinator": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}


def _from_env(args: argparse.Namespace) -> tuple[Optional[str], Optional[int], Optional[int]]:
    """The three multi-process flags, each from its JAX environment variable when not given."""
    values: dict[str, Any] = {}
    for dest, var in ENV_FLAGS.items():
        value = getattr(args, dest, None)
        if value is None and os.environ.get(var):
            value = os.environ[var]
            if dest != "coordinator":
                if not value.strip().isdigit():
                    raise UsageError(f"{var} must be an int >= 0; got {value!r}")
                value = int(value)
        values[dest] = value
    return values["coordinator"], values["num_processes"], values["process_id"]


def join(args: argparse.Namespace) -> Optional[Path]:
    """Joins the multi-process run the flags (or environment variables) describe, before any device is
    used; on a process other than 0 points the run at a scratch copy of its folder and returns that
    scratch folder (to delete at the end). One process (no flags): does nothing, returns None."""
    from jaxrl_modules import distributed

    coordinator, num_processes, process_id = _from_env(args)
    if coordinator is None and num_processes is None and process_id is None:
        return None
    try:
        distributed.initialize(coordinator, num_processes, process_id)
    except (TypeError, ValueError) as err:
        raise UsageError(f"--coordinator/--num-processes/--process-id: {err}") from None
    if distributed.is_primary():
        return None
    scratch = Path(tempfile.mkdtemp(prefix=f"jaxrl_modules_process{process_id}_"))
    if args.resume is not None:  # restore from the run's checkpoints (copied by `copy_resumed_run`), write nothing there
        args.resume_source, args.resume = args.resume, str(scratch / "run")
    else:
        args.runs_dir, args.name, args.overwrite = str(scratch), "run", False
    args.quiet = True  # process 0 reports
    return scratch


def copy_resumed_run(args: argparse.Namespace) -> None:
    """A non-primary process's private copy of the run folder it resumes; a UsageError when this host
    cannot read it (each host needs the run folder, e.g. on a shared filesystem)."""
    source = getattr(args, "resume_source", None)
    if source is None or Path(args.resume).exists():
        return
    try:
        shutil.copytree(source, args.resume)
    except OSError as err:
        raise UsageError(f"--resume {source!r}: this process (not process 0) cannot read the run folder ({err}); "
                         "every host of a multi-process run needs it, e.g. on a shared filesystem") from None


def leave(scratch: Optional[Path]) -> None:
    """Deletes a non-primary process's scratch run folder."""
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(args: argparse.Namespace) -> int:
    """`jaxrl-modules launch --num-processes P [--devices-per-process D] -- train ...`: P processes of one
    `jax.distributed` run on this machine (coordinator on 127.0.0.1), each given `--coordinator`,
    `--num-processes` and `--process-id`; on CPU each emulates D devices (XLA_FLAGS). Waits for all;
    Ctrl-C is passed on to every process (each saves and exits). Returns the first non-zero exit code."""
    check_positive("--num-processes", args.num_processes)
    command = list(args.command_args)
    if command[:1] == ["--"]:
        command = command[1:]
    if command[:1] != ["train"]:
        raise UsageError(f"launch runs a train command: expected `launch --num-processes P -- train ...`; got {command!r}")
    if any(a.split("=")[0] in ("--coordinator", "--num-processes", "--process-id") for a in command):
        raise UsageError("launch sets --coordinator, --num-processes and --process-id itself; leave them out of the "
                         "train command")
    env = dict(os.environ)
    envs = [env] * args.num_processes
    if args.devices_per_process is not None:
        check_positive("--devices-per-process", args.devices_per_process)
        flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={args.devices_per_process}"])
        if "CUDA_VISIBLE_DEVICES" not in os.environ:  # GPUs: each process its own D of them
            d = args.devices_per_process
            envs = [{**env, "CUDA_VISIBLE_DEVICES": ",".join(str(i * d + j) for j in range(d))}
                    for i in range(args.num_processes)]
    address = f"127.0.0.1:{args.port or free_port()}"
    # Own sessions: a Ctrl-C at the terminal reaches the launcher alone, which passes it on once to each.
    procs = [subprocess.Popen([sys.executable, "-m", "jaxrl_modules.cli", *command, "--coordinator", address,
                               "--num-processes", str(args.num_processes), "--process-id", str(i)], env=envs[i],
                              start_new_session=True) for i in range(args.num_processes)]

    def forward(signum: int, frame: Any) -> None:
        for p in procs:
            if p.poll() is None:  # a hang-up (the terminal closed) stops the run as SIGTERM does
                p.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return _wait(procs)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for p in procs:  # a process that failed leaves the others waiting on it: end them
            if p.poll() is None:
                p.kill()
                p.wait()


def _wait(procs: list, grace: float = 120.0) -> int:
    """Waits for every process; returns the first non-zero exit code, else 0. Once one has exited
    non-zero, the others get `grace` seconds to finish (a stop or a NaN ends them all, process 0 saving
    last) before they are ended: after a failure of one alone they would wait on it."""
    deadline = None
    while True:
        codes = [p.poll() for p in procs]
        failed = next((c for c in codes if c not in (None, 0)), None)
        if all(c is not None for c in codes):
            return failed or 0
        if failed is not None and deadline is None:
            deadline = time.monotonic() + grace
        if deadline is not None and time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
            return failed
        time.sleep(0.2)
