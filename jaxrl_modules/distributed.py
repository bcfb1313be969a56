"""Many processes, one program: a thin, checked front to `jax.distributed`, JAX's own multi-host runtime.

After `initialize(...)` every process sees the global device list, so `learners(num_learners="auto")`
spans all processes' devices: the all-in-jit loop runs as one SPMD program (each process computes its
own devices' envs), a host loop feeds its local devices with its own envs' steps. Only process 0
writes checkpoints and logs (`is_primary`); every process can restore.

On CPU the cross-process collectives need JAX's gloo implementation; `initialize` selects it before
the runtime starts (`jax_cpu_collectives_implementation="gloo"`).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import numpy as np

from jaxrl_modules import validation as v

ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")  # read by the command line


def check_coordinator(value: Any) -> str:
    """`HOST:PORT` with a port in [1, 65535]; a ValueError/TypeError naming `coordinator` otherwise."""
    expected = "'HOST:PORT' (e.g. '127.0.0.1:12345'), the address of process 0's coordinator service"
    if not isinstance(value, str):
        v.fail("coordinator", expected, value, TypeError)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        v.fail("coordinator", expected, value)
    return value


def initialize(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> None:
    """`jax.distributed.initialize` with checked arguments (all three, or none: JAX then detects them on
    SLURM, Open MPI or a TPU pod). Call it before anything else touches a device. On CPU, selects gloo
    for cross-process collectives. Idempotent for the same arguments."""
    given = [x is not None for x in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ValueError("multi-process training needs coordinator, num_processes and process_id together (or none, "
                         f"to let JAX detect them on SLURM/TPU); got coordinator={coordinator!r}, "
                         f"num_processes={num_processes!r}, process_id={process_id!r}")
    if all(given):
        check_coordinator(coordinator)
        num_processes = v.positive_int("num_processes", num_processes)
        process_id = v.nonnegative_int("process_id", process_id)
        if process_id >= num_processes:
            v.fail("process_id", f"an int in [0, {num_processes - 1}] (num_processes={num_processes})", process_id)
    if jax.distributed.is_initialized():
        return
    # CPU devices' cross-process collectives (GPUs use NCCL and TPUs their own; this leaves them as they are).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)


def is_primary() -> bool:
    """True on the process that writes checkpoints and logs (process 0; the only one without jax.distributed)."""
    return jax.process_index() == 0


def host_values(tree: Any) -> Any:
    """`tree` as NumPy on this process, a global array spanning several processes gathered from all of
    them (`multihost_utils.process_allgather`: every process must call it, in the same order)."""
    from jax.experimental import multihost_utils

    def get(x: Any) -> Any:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                data = multihost_utils.process_allgather(jax.random.key_data(x), tiled=True)
                return jax.random.wrap_key_data(np.asarray(data), impl=jax.random.key_impl(x))
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return jax.device_get(x)

    return jax.tree_util.tree_map(get, tree)


def barrier(name: str) -> None:
    """Waits for every process (a no-op with one)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def orbax_this_process() -> Any:
    """Orbax options for reading or writing in this process alone. Our checkpoints hold NumPy values
    (a multi-process state is gathered first), so process 0 writes them by itself and every process
    reads them by itself, with none of orbax's cross-process barriers (which would wait for the others)."""
    import orbax.checkpoint as ocp

    return ocp.options.MultiprocessingOptions(primary_host=jax.process_index(), active_processes={jax.process_index()})


def sum_over_processes(values: Any) -> np.ndarray:
    """`values` (numbers) summed over every process of a multi-process run, as they are with one (a
    collective, and so also a barrier: every process must call it)."""
    values = np.asarray(values, np.float64)
    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(values)).sum(axis=0)


def any_process(flag: bool) -> bool:
    """True when `flag` is True on any process (a collective: every process must call it); `flag`
    itself with one process."""
    return bool(sum_over_processes([bool(flag)])[0] > 0)
