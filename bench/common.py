"""Timing helpers shared by the benchmarks: interleaved medians (pipelined and awaited calls),
environment facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import jax

RESULTS = Path(__file__).parent / "results"


def time_calls(fn: Callable[[], object], inner: int) -> float:
    """Seconds per call of `fn`, over `inner` calls, results blocked on."""
    out = None
    start = time.perf_counter()
    for _ in range(inner):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / inner


def interleaved_medians(fns: dict[str, Callable[[], object]], inner: int, reps: int) -> dict[str, float]:
    """Median seconds per call of each fn, measured in alternation so drift hits all alike."""
    for fn in fns.values():
        jax.block_until_ready(fn())  # compile and warm up
    samples: dict[str, list] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            samples[k].append(time_calls(fn, inner))
    return {k: statistics.median(v) for k, v in samples.items()}


def awaited_medians(fns: dict[str, Callable[[], object]], inner: int, reps: int) -> dict[str, dict[str, float]]:
    """Latency of one call waited on before the next (a host loop acting once per env step),
    in seconds: each round times `inner` calls of each fn, one fn after another, and takes
    their median; returns per fn the lowest round median ("min", the figure to compare on a
    shared machine) and the median over rounds ("median")."""
    for fn in fns.values():
        jax.block_until_ready(fn())  # compile and warm up
    rounds: dict[str, list] = {k: [] for k in fns}
    clock = time.perf_counter_ns
    for _ in range(reps):
        for k, fn in fns.items():
            times = []
            for _ in range(inner):
                start = clock()
                jax.block_until_ready(fn())
                times.append(clock() - start)
            rounds[k].append(statistics.median(times) * 1e-9)
    return {k: {"min": min(v), "median": statistics.median(v)} for k, v in rounds.items()}


def environment() -> dict:
    return {"jax": jax.__version__, "device": str(jax.devices()[0]), "cpus": os.cpu_count(),
            "python": platform.python_version(), "machine": platform.machine()}


def write_results(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def in_subprocess(script: str, part: str, args: list[str], timeout: float = 300) -> dict:
    """`python script --part part *args` in a fresh process, its last stdout line parsed as JSON: compile
    times are cold, and long-lived XLA CPU processes that ran several large programs were seen to stall
    on this machine; a stalled process (0% CPU, about once in 5 here) is retried, not waited on."""
    for attempt in range(3):
        try:
            out = subprocess.run([sys.executable, script, "--part", part, *args], check=True, capture_output=True,
                                 text=True, timeout=timeout).stdout
            return json.loads(out.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            print(f"{part}: the process stalled for {timeout:.0f} s (attempt {attempt + 1} of 3); retrying", flush=True)
    raise RuntimeError(f"{part}: stalled three times")
