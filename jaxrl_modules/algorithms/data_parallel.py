"""Data-parallel learners over a `jax.sharding.Mesh` (RLlib's `learners(num_learners=N)`).

JAX's own partitioner does the work (Anakin-style, no home-made runtime): params and optimizer state
are replicated, every batch is split along its rows over the mesh's "learners" axis, and XLA inserts
the collectives, so the mean loss's gradient of a minibatch is all-reduced inside the compiled update.
Because the program is the single-device program with sharding annotations, an update on N devices
equals the update on one device for the same global batch, up to float reassociation.

Across processes (`jax.distributed.initialize`) the mesh spans every process's devices: the all-in-jit
loop runs unchanged (each process computes its devices' envs), and a host loop turns each process's
own rows into one global array with `jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxrl_modules import validation as v

AXIS = "learners"  # the mesh axis batches are split along


def num_learners_setting(config: Any) -> Any:
    """`config.num_learners` (0 when never set: one learner on the default device)."""
    return getattr(config, "num_learners", 0)


def resolve_num_learners(value: Any) -> int:
    """Devices a `num_learners` setting trains on: "auto" = every device JAX sees (all processes'),
    0 or 1 = one (RLlib's 0 is a local learner). A ValueError naming the setting when more are asked
    for than JAX sees."""
    if value == "auto":
        return jax.device_count()
    n = max(1, int(value))
    if jax.process_count() > 1 and n != jax.device_count():
        v.fail("num_learners", f"'auto' or {jax.device_count()} in a run of {jax.process_count()} processes (jax.distributed): "
               "the learners must span every process's devices, or the processes would train apart", value)
    if n > 1 and n > jax.device_count():
        devices = jax.devices()
        v.fail("num_learners", f"at most the {len(devices)} device(s) JAX sees ({devices[0].platform}; "
               f"{jax.process_count()} process(es)), or 'auto' (on CPU, emulate devices with "
               f"XLA_FLAGS=--xla_force_host_platform_device_count={n} set before jax is imported; across machines "
               "call jax.distributed.initialize first)", value)
    return n


@dataclasses.dataclass(frozen=True, eq=False)
class DataParallel:
    """The learners' mesh (None for one learner) and how trees are placed on it. Configuration only:
    every method is pure, and with one learner every method returns its input."""

    mesh: Optional[Mesh]

    @property
    def size(self) -> int:
        return 1 if self.mesh is None else int(self.mesh.devices.size)

    def _rows_sharding(self, ndim: int, axis: int) -> NamedSharding:
        return NamedSharding(self.mesh, P(*([None] * axis), AXIS, *([None] * (ndim - axis - 1))))

    def replicated_sharding(self) -> Optional[NamedSharding]:
        return None if self.mesh is None else NamedSharding(self.mesh, P())

    def check_rows(self, rows: int, setting: str, detail: str = "", value: Any = None) -> None:
        """A ValueError naming `setting` (received: `value`, default `rows`) when `rows` do not split evenly
        over the learners."""
        if self.size > 1 and rows % self.size:
            v.fail(setting, f"a value that splits evenly over num_learners={self.size} devices"
                   f"{' (' + detail + ')' if detail else ''}: {rows} rows do not", rows if value is None else value)

    def shard_rows(self, tree: Any, axis: int = 0, setting: str = "train batch") -> Any:
        """Traced: `tree`'s leaves split along `axis` over the learners (a sharding constraint)."""
        if self.mesh is None:
            return tree

        def constrain(x: Any) -> Any:
            if not hasattr(x, "ndim") or x.ndim <= axis:
                return x
            self.check_rows(x.shape[axis], setting)
            return jax.lax.with_sharding_constraint(x, self._rows_sharding(x.ndim, axis))

        return jax.tree_util.tree_map(constrain, tree)

    def replicate(self, tree: Any) -> Any:
        """Traced: `tree` replicated on every learner (a sharding constraint)."""
        if self.mesh is None:
            return tree
        sharding = self.replicated_sharding()
        return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, sharding)
                                      if hasattr(x, "ndim") else x, tree)

    def put_replicated(self, tree: Any) -> Any:
        """Eager: a value every process holds alike (initial params, a restored state) as a global array
        replicated on every learner."""
        if self.mesh is None:
            return tree
        sharding = self.replicated_sharding()

        def put(x: Any) -> Any:
            if isinstance(x, jax.Array) and x.sharding == sharding:
                return x
            if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                data = np.asarray(jax.random.key_data(x))
                impl = jax.random.key_impl(x)
                raw = jax.make_array_from_callback(data.shape, sharding, lambda i: data[i])
                return jax.random.wrap_key_data(raw, impl=impl)
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])

        return jax.tree_util.tree_map(put, tree)

    def put_local_rows(self, tree: Any, axis: int = 0) -> Any:
        """Eager, host loops: each process's own rows (its envs' steps) as one global array split along
        `axis` over every learner (`jax.make_array_from_process_local_data`); one process: a device_put."""
        if self.mesh is None:
            return tree

        def put(x: Any) -> Any:
            host = np.asarray(x)
            sharding = self._rows_sharding(host.ndim, axis)
            if jax.process_count() == 1:
                return jax.device_put(host, sharding)
            global_shape = host.shape[:axis] + (host.shape[axis] * jax.process_count(),) + host.shape[axis + 1:]
            return jax.make_array_from_process_local_data(sharding, host, global_shape)

        return jax.tree_util.tree_map(put, tree)


def make_data_parallel(config: Any) -> DataParallel:
    """The learners of `config` (`learners(num_learners=...)`): the first N of JAX's devices, all
    processes' in a multi-process run."""
    n = resolve_num_learners(num_learners_setting(config))
    if n == 1:
        return DataParallel(None)
    return DataParallel(Mesh(np.asarray(jax.devices()[:n]), (AXIS,)))


def num_learners(config: Any) -> int:
    """Devices `config` trains on (1 unless `learners(num_learners=...)` asks for more)."""
    return resolve_num_learners(num_learners_setting(config))
