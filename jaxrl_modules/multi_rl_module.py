"""MultiRLModule: sub-modules keyed by ModuleID, params as a dict keyed by ModuleID.

Default containers run identical sub-modules as one vmapped computation inside one jitted
call. Custom subclasses (a shared encoder, as in RLlib's guide) override `setup` and
`_forward` and run through flax `apply` on the whole multi-module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import KeysView, Mapping
from typing import Any, Callable, ClassVar, Iterator, Optional, Sequence

import flax.linen as nn
import jax

from jaxrl_modules.apis import ValueFunctionAPI
from jaxrl_modules.batch_check import check_module_axis, check_module_ids, check_rng, module_id_error
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns
from jaxrl_modules.param_check import check_params
from jaxrl_modules.rl_module import PHASES, RLModule, module_rng
from jaxrl_modules.rl_module_spec import RLModuleSpec
from jaxrl_modules.stacked import StackedRLModules, module_keys, stack_trees, unstack_tree

_FORWARDS = ("_forward", "_forward_exploration", "_forward_inference", "_forward_train", "setup")


def _same_spec(a: RLModuleSpec, b: RLModuleSpec) -> bool:
    return (a.module_class is b.module_class and a.observation_space == b.observation_space
            and a.action_space == b.action_space and a.inference_only == b.inference_only
            and a.model_config == b.model_config)


def _signature(tree: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((tuple(x.shape), str(x.dtype)) for x in leaves)


class MultiRLModule(RLModule):
    """A container of RLModules keyed by ModuleID, itself an RLModule (flax module)."""

    rl_module_specs: Any = None
    is_multi_rl_module: ClassVar[bool] = True

    # ----------------------------------------------------------------- authoring (bound)
    def setup(self) -> None:
        specs = self._specs()
        self._rl_modules = {mid: spec.build(name=mid) for mid, spec in specs.items()}

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        return {mid: self._rl_modules[mid]._forward(b, **kwargs) for mid, b in batch.items()}

    def _dispatch(self, phase: str, batch: dict, **kwargs: Any) -> dict:
        if type(self)._forward is not MultiRLModule._forward:
            return self._forward(batch, **kwargs)
        return {mid: getattr(self._rl_modules[mid], f"_forward_{phase}")(b, **kwargs) for mid, b in batch.items()}

    def _forward_exploration(self, batch: dict, **kwargs: Any) -> dict:
        return self._dispatch("exploration", batch, **kwargs)

    def _forward_inference(self, batch: dict, **kwargs: Any) -> dict:
        return self._dispatch("inference", batch, **kwargs)

    def _forward_train(self, batch: dict, **kwargs: Any) -> dict:
        return self._dispatch("train", batch, **kwargs)

    def _init_multi(self, batches: dict) -> None:
        """Runs the multi-module's own forwards on the policy ids' dummy batches, then
        initialises every sub-module those forwards did not reach on its own."""
        self._forward_exploration(batches)
        self._forward_inference(batches)
        if not self.inference_only:
            out = self._forward_train(batches)
            for mid, fwd in out.items():
                sub = self._rl_modules[mid]
                if isinstance(sub, ValueFunctionAPI):
                    sub._compute_values(batches[mid], embeddings=fwd.get(Columns.EMBEDDINGS))
        for mid, sub in self._rl_modules.items():
            if not sub.variables.get("params"):
                sub._init_all(self[mid].dummy_batch())

    # ----------------------------------------------------------------- mapping API
    @nn.nowrap
    def _specs(self) -> dict:
        specs = self.rl_module_specs
        if isinstance(specs, RLModuleSpec):
            specs = {DEFAULT_MODULE_ID: specs}
        if not isinstance(specs, Mapping) or not specs:
            raise ValueError(f"rl_module_specs must be a non-empty dict {{module_id: RLModuleSpec}}; got {specs!r}")
        out = {}
        for mid, spec in specs.items():
            err = module_id_error(mid, f"{type(self).__name__}.rl_module_specs")
            if err is not None:
                raise err
            if not isinstance(spec, RLModuleSpec):
                raise TypeError(f"rl_module_specs[{mid!r}] must be an RLModuleSpec; got {type(spec).__name__}")
            if self.inference_only and not spec.inference_only:
                spec = dataclasses.replace(spec, inference_only=True)
            out[mid] = spec
        return out

    @nn.nowrap
    def __getitem__(self, module_id: str) -> RLModule:
        if self.scope is not None:
            return self._rl_modules[module_id]
        specs = self._specs()
        if not isinstance(module_id, str):
            raise TypeError(f"{type(self).__name__}[...] takes a ModuleID (str); got {type(module_id).__name__} "
                            f"{module_id!r}; available: {sorted(specs)}")
        if module_id not in specs:
            raise KeyError(f"Module ID {module_id!r} not found; available: {sorted(specs)}")
        twins = self.__dict__.get("_twins")
        if twins is None:
            twins = {}
            object.__setattr__(self, "_twins", twins)
        if module_id not in twins:
            twins[module_id] = specs[module_id].build()
        return twins[module_id]

    @nn.nowrap
    def keys(self) -> KeysView:
        """The ModuleIDs, in spec order; set-like (`==` a set, `&`, `|`), as a dict's keys."""
        return self._specs().keys()

    @nn.nowrap
    def values(self) -> list[RLModule]:
        return [self[mid] for mid in self._specs()]

    @nn.nowrap
    def items(self) -> list[tuple[str, RLModule]]:
        return [(mid, self[mid]) for mid in self._specs()]

    @nn.nowrap
    def get(self, module_id: str, default: Any = None) -> Any:
        return self[module_id] if module_id in self else default

    @nn.nowrap
    def __contains__(self, module_id: object) -> bool:
        return module_id in self._specs()

    @nn.nowrap
    def __len__(self) -> int:
        return len(self._specs())

    @nn.nowrap
    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    @nn.nowrap
    def as_multi_rl_module(self) -> "MultiRLModule":
        """A MultiRLModule already: itself (RLlib)."""
        return self

    @nn.nowrap
    def with_module(self, module_id: str, module: RLModule, *, override: bool = False) -> "MultiRLModule":
        """A new MultiRLModule with `module` under `module_id` (an existing id needs `override=True`,
        as RLlib's `add_module`); a non-inference-only module makes the result non-inference-only."""
        specs = dict(self._specs())
        err = module_id_error(module_id, f"{type(self).__name__}.with_module")
        if err is not None:
            raise err
        if not isinstance(module, RLModule) or isinstance(module, MultiRLModule):
            raise TypeError(f"{type(self).__name__}.with_module({module_id!r}, ...) takes a single RLModule; "
                            f"got {type(module).__name__}")
        if module_id in specs and not override:
            raise ValueError(f"{type(self).__name__}.with_module: ModuleID {module_id!r} already exists "
                             f"(ids {sorted(specs)}); pass override=True to replace it")
        specs[module_id] = RLModuleSpec.from_module(module)
        inference_only = self.inference_only and module.inference_only
        return self.clone(parent=None, rl_module_specs=specs, inference_only=inference_only)

    @nn.nowrap
    def without_module(self, module_id: str) -> "MultiRLModule":
        specs = dict(self._specs())
        err = module_id_error(module_id, f"{type(self).__name__}.without_module")
        if err is not None:
            raise err
        if module_id not in specs:
            raise KeyError(f"Module ID {module_id!r} not found; available: {sorted(specs)}")
        del specs[module_id]
        return self.clone(parent=None, rl_module_specs=specs)

    @nn.nowrap
    def get_initial_state(self) -> dict:
        return {mid: m.get_initial_state() for mid, m in self.items() if m.is_stateful()}

    @nn.nowrap
    def _is_custom(self) -> bool:
        return any(getattr(type(self), name) is not getattr(MultiRLModule, name) for name in _FORWARDS)

    # ----------------------------------------------------------------- functional API
    @nn.nowrap
    def init(self, rng: Any, *args: Any, **kwargs: Any) -> dict:
        """`init(rng) -> {module_id: params}`; sub-modules get independent initial weights."""
        if args or kwargs or isinstance(rng, Mapping):
            return nn.Module.init(self, rng, *args, **kwargs)
        return self._cached(("init",), lambda: jax.jit(self.init_fn))(rng)

    @nn.nowrap
    def init_fn(self, rng: jax.Array) -> dict:
        check_rng(rng, f"{type(self).__name__}.init", required=True)  # at trace time: no per-call cost
        if self._is_custom():
            batches = {mid: m.dummy_batch() for mid, m in self.items() if m.action_space is not None}
            variables = nn.Module.init(self, {"params": rng, "action": rng}, batches, method=MultiRLModule._init_multi)
            params = dict(variables.get("params", {}))
            return {mid: params.get(mid, {}) for mid in self.keys()} | {
                k: v for k, v in params.items() if k not in self}
        specs = self._specs()
        out = {}
        for mids in self._groups(list(specs), None):
            keys = module_keys(rng, mids)
            stacked = jax.vmap(self[mids[0]].init_fn)(keys)
            out.update(zip(mids, unstack_tree(stacked, len(mids))))
        return {mid: out[mid] for mid in specs}

    @nn.nowrap
    def _groups(self, mids: Sequence[str], batches: Optional[dict]) -> list[list[str]]:
        """ModuleIDs of identical specs (and identically shaped batches) grouped together."""
        specs = self._specs()
        groups: list[tuple[Any, list[str]]] = []
        for mid in mids:
            sig = None if batches is None else _signature(batches[mid])
            for (spec, gsig), members in groups:
                if gsig == sig and _same_spec(spec, specs[mid]):
                    members.append(mid)
                    break
            else:
                groups.append(((specs[mid], sig), [mid]))
        return [members for _, members in groups]

    @nn.nowrap
    def _validate_multi(self, params: Any, batches: Any) -> None:
        if not isinstance(batches, Mapping):
            raise TypeError(f"A MultiRLModule batch is a dict {{module_id: batch}}; got {type(batches).__name__}")
        unknown = [mid for mid in batches if mid not in self]
        if unknown:
            raise ValueError(f"Unknown ModuleID(s) {unknown} in the batch; this MultiRLModule has {list(self.keys())}")
        if not isinstance(params, Mapping):
            raise TypeError(f"{type(self).__name__} params must be a dict {{module_id: params}} as init() returns "
                            f"it; got {type(params).__name__}")
        missing = [mid for mid in batches if mid not in params]
        if missing:
            raise ValueError(f"params lack ModuleID(s) {missing}; params have {sorted(params)}")
        for mid, b in batches.items():
            if not isinstance(b, Mapping) or Columns.OBS not in b:
                got = sorted(b) if isinstance(b, Mapping) else type(b).__name__
                raise ValueError(f"The batch of module {mid!r} must be a dict with {Columns.OBS!r}; got {got}")

    @nn.nowrap
    def phase_fn(self, phase: str) -> Callable:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}; got {phase!r}")

        def fn(params: dict, batches: dict, rng: Optional[jax.Array] = None, **kwargs: Any) -> dict:
            self._validate_multi(params, batches)
            name = type(self).__name__
            check_rng(rng, f"{name}.forward_{phase}", required=phase == "exploration")
            rng = jax.random.key(0) if rng is None else rng
            if self._is_custom():
                self._check_params(params, phase)
                out = self.apply({"params": params}, dict(batches), method=f"_forward_{phase}",
                                 rngs={"action": rng}, **kwargs)
                return {mid: self[mid].postprocess(phase, dict(o), module_rng(rng, mid)) for mid, o in out.items()}
            for mid in batches:
                sub = self[mid]
                sub._validate_batch(batches[mid])
                sub._check_params(params[mid], phase, where=f"{name}.forward_{phase} of module {mid!r}",
                                  root=f"params[{mid!r}]")
            out = {}
            for mids in self._groups(list(batches), batches):
                f = self[mids[0]].phase_fn(phase)
                if len(mids) == 1:
                    out[mids[0]] = f(params[mids[0]], batches[mids[0]], module_rng(rng, mids[0]), **kwargs)
                    continue
                res = jax.vmap(lambda p, b, k: f(p, b, k, **kwargs))(
                    stack_trees([params[m] for m in mids]), stack_trees([batches[m] for m in mids]),
                    module_keys(rng, mids))
                out.update(zip(mids, unstack_tree(res, len(mids))))
            return {mid: out[mid] for mid in batches}

        return fn

    @nn.nowrap
    def stacked(self, mids: Optional[Sequence[str]] = None) -> StackedRLModules:
        """The fast path for N identical modules: params and batches with a leading module axis."""
        specs = self._specs()
        mids = check_module_ids(list(specs) if mids is None else mids, f"{type(self).__name__}.stacked")
        unknown = [m for m in mids if m not in specs]
        if unknown:
            raise ValueError(f"Unknown ModuleID(s) {unknown}; this MultiRLModule has {list(specs)}")
        if any(not _same_spec(specs[mids[0]], specs[m]) for m in mids):
            raise ValueError(f"stacked() needs sub-modules of identical specs; {mids} differ")
        return StackedRLModules(self[mids[0]], tuple(mids))

    @staticmethod
    def stack_params(params: dict, mids: Sequence[str]) -> Any:
        """`{mid: params}` -> one pytree with a leading module axis, in `mids` order."""
        if not isinstance(params, Mapping):
            raise TypeError(f"stack_params takes a dict {{module_id: params}}; got {type(params).__name__}")
        mids = check_module_ids(mids, "stack_params", known=params)
        for m in mids[1:]:
            check_params(params[mids[0]], params[m], f"stack_params: module {m!r} differs from {mids[0]!r}",
                         root=f"params[{m!r}]")
        return stack_trees([params[m] for m in mids])

    @staticmethod
    def unstack_params(stacked: Any, mids: Sequence[str]) -> dict:
        mids = check_module_ids(mids, "unstack_params")
        check_module_axis(stacked, len(mids), "stacked params", f" for ModuleIDs {mids}")
        return dict(zip(mids, unstack_tree(stacked, len(mids))))

    @nn.nowrap
    def __repr__(self) -> str:
        return f"MultiRLModule({ {mid: type(m).__name__ for mid, m in self.items()} })"


@dataclasses.dataclass
class MultiRLModuleSpec:
    """Specs of a MultiRLModule: a dict `{module_id: RLModuleSpec}` or one shared spec.

    `inference_only=None` resolves to `all(sub_spec.inference_only)` (RLlib), and when it ends
    up True every sub-spec becomes inference_only, so `from_module(spec.build()) == spec`.
    One shared spec answers `mid in spec` and `spec[mid]` for any ModuleID.
    """

    multi_rl_module_class: type = MultiRLModule
    observation_space: Any = None
    action_space: Any = None
    inference_only: Optional[bool] = None
    model_config: Any = None
    rl_module_specs: Any = None
    load_state_path: Optional[str] = None
    modules_to_load: Optional[set] = None

    def __post_init__(self) -> None:
        if isinstance(self.rl_module_specs, RLModuleSpec):
            self._resolve_inference_only()
            return
        if not isinstance(self.rl_module_specs, Mapping):
            raise ValueError("rl_module_specs must be a dict {module_id: RLModuleSpec} or one RLModuleSpec; "
                             f"got {type(self.rl_module_specs).__name__}")
        self.rl_module_specs = dict(self.rl_module_specs)
        for mid, spec in self.rl_module_specs.items():
            err = module_id_error(mid, "MultiRLModuleSpec.rl_module_specs")
            if err is not None:
                raise err
            if not isinstance(spec, RLModuleSpec):
                raise TypeError(f"MultiRLModuleSpec.rl_module_specs[{mid!r}] must be an RLModuleSpec; "
                                f"got {type(spec).__name__}")
        if self.inference_only is not None and not isinstance(self.inference_only, bool):
            raise TypeError(f"MultiRLModuleSpec.inference_only must be a bool or None; got {self.inference_only!r}")
        self._resolve_inference_only()

    def _resolve_inference_only(self) -> None:
        specs = self.module_specs()
        if self.inference_only is None:
            if not specs:
                return
            self.inference_only = all(s.inference_only for s in specs.values())
        if self.inference_only:
            forced = {mid: s if s.inference_only else dataclasses.replace(s, inference_only=True) for mid, s in specs.items()}
            if isinstance(self.rl_module_specs, RLModuleSpec):
                self.rl_module_specs = forced[DEFAULT_MODULE_ID]
            else:
                self.rl_module_specs = forced

    def module_specs(self) -> dict:
        if isinstance(self.rl_module_specs, RLModuleSpec):
            return {DEFAULT_MODULE_ID: self.rl_module_specs}
        return dict(self.rl_module_specs)

    def _check_id(self, module_id: Any, where: str) -> None:
        err = module_id_error(module_id, f"MultiRLModuleSpec{where}")
        if err is not None:
            raise err

    def build(self, module_id: Optional[str] = None) -> Any:
        specs = self.module_specs()
        if module_id is not None:
            return self[module_id].build()
        if not specs:
            raise ValueError("MultiRLModuleSpec.build() needs at least one sub-spec; rl_module_specs is empty")
        inference_only = self.inference_only
        if inference_only is None:
            inference_only = all(s.inference_only for s in specs.values())
        return self.multi_rl_module_class(
            observation_space=self.observation_space, action_space=self.action_space,
            inference_only=inference_only, model_config=self.model_config, rl_module_specs=specs,
        )

    def __contains__(self, module_id: str) -> bool:
        if isinstance(self.rl_module_specs, RLModuleSpec):
            return module_id_error(module_id, "") is None  # one spec shared by every ModuleID
        return module_id in self.rl_module_specs

    def __getitem__(self, module_id: str) -> RLModuleSpec:
        self._check_id(module_id, f"[{module_id!r}]")
        if isinstance(self.rl_module_specs, RLModuleSpec):
            return self.rl_module_specs
        if module_id not in self.rl_module_specs:
            raise KeyError(f"Module ID {module_id!r} not found; available: {sorted(self.rl_module_specs)}")
        return self.rl_module_specs[module_id]

    def add_modules(self, module_specs: dict, override: bool = True) -> None:
        """RLlib's: new ids are added; existing ones are replaced (override) or only have their
        unset fields filled in. Adding a non-inference-only spec makes this spec non-inference-only."""
        if not isinstance(module_specs, Mapping):
            raise TypeError(f"MultiRLModuleSpec.add_modules takes a dict {{module_id: RLModuleSpec}}; "
                            f"got {type(module_specs).__name__}")
        specs = self.module_specs()
        for mid, spec in module_specs.items():
            self._check_id(mid, ".add_modules")
            if not isinstance(spec, RLModuleSpec):
                raise TypeError(f"MultiRLModuleSpec.add_modules: the spec of {mid!r} must be an RLModuleSpec; "
                                f"got {type(spec).__name__}")
            if override or mid not in specs:
                specs[mid] = spec
            else:
                specs[mid] = dataclasses.replace(specs[mid]).update(spec, override=False)
            if not spec.inference_only:
                self.inference_only = False
        self.rl_module_specs = specs

    def update(self, other: "MultiRLModuleSpec", override: bool = False) -> "MultiRLModuleSpec":
        """Merges `other`'s sub-specs into this one (RLlib): with `override`, `other`'s specs replace
        those of the same ids; without, existing ids keep their spec (only unset fields filled)."""
        if not isinstance(other, MultiRLModuleSpec):
            raise TypeError(f"MultiRLModuleSpec.update takes a MultiRLModuleSpec; got {type(other).__name__}")
        if isinstance(self.rl_module_specs, RLModuleSpec) and isinstance(other.rl_module_specs, RLModuleSpec):
            self.rl_module_specs = dataclasses.replace(self.rl_module_specs).update(other.rl_module_specs, override)
        else:
            self.add_modules(other.module_specs(), override=override)
        return self

    def remove_modules(self, module_ids: Any) -> None:
        specs = self.module_specs()
        for mid in [module_ids] if isinstance(module_ids, str) else module_ids:
            specs.pop(mid, None)
        self.rl_module_specs = specs

    def as_multi_rl_module_spec(self) -> "MultiRLModuleSpec":
        return self

    @classmethod
    def from_module(cls, module: MultiRLModule) -> "MultiRLModuleSpec":
        if not isinstance(module, MultiRLModule):
            raise TypeError(f"MultiRLModuleSpec.from_module takes a MultiRLModule; got {type(module).__name__} "
                            "(use RLModuleSpec.from_module, or wrap it first: "
                            "MultiRLModule(rl_module_specs={module_id: RLModuleSpec.from_module(module)}))")
        return cls(type(module), module.observation_space, module.action_space, module.inference_only,
                   module.model_config, dict(module._specs()))
