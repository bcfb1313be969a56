"""RLModule: a flax.linen module described by spaces and a model config, whose weights
are an explicit params pytree and whose forward passes are pure, jitted functions.

Authors override `setup` and `_forward` / `_forward_{exploration,inference,train}` as in
RLlib. Users call the unbound, functional API:

    params = module.init(rng)
    out = module.forward_exploration(params, {Columns.OBS: obs}, rng)
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, Callable, ClassVar, Optional

import flax
import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp

from jaxrl_modules.apis import InferenceOnlyAPI, QNetAPI, SelfSupervisedLossAPI, TargetNetworkAPI, ValueFunctionAPI
from jaxrl_modules.columns import Columns
from jaxrl_modules.distributions import default_dist_cls
from jaxrl_modules.batch_check import check_lead_consistent, check_rng, check_state_in
from jaxrl_modules.param_check import FlatSpec, check_params, describe
from jaxrl_modules.spaces import check_obs, space_zeros

PHASES = ("exploration", "inference", "train")
# What `init_fn` raises for a module that cannot be initialised from its spaces alone (a head
# that reads another module's embeddings, a forward reading a column the dummy batch lacks).
_NOT_INITIALISABLE_ALONE = (ValueError, TypeError, KeyError, AttributeError, NotImplementedError, flax.errors.FlaxError)


def _without(params: dict, drop: tuple) -> dict:
    """A shallow copy of `params` without the top-level keys `drop` (missing ones are fine)."""
    params = params.copy()
    for key in drop:
        params.pop(key, None)
    return params


def module_rng(rng: jax.Array, module_id: str) -> jax.Array:
    """A module's own random stream: depends on its ModuleID only, not on other ids."""
    return jax.random.fold_in(rng, zlib.crc32(module_id.encode()) & 0x7FFFFFFF)


class RLModule(nn.Module):
    """Base class of every module. Fields as RLlib's constructor; never override __init__."""

    observation_space: Any = None
    action_space: Any = None
    inference_only: bool = False
    model_config: Any = None
    # Lets the spec and the checkpoint code tell a MultiRLModule apart without importing it
    # (multi_rl_module sits above them: the import graph flows one way).
    is_multi_rl_module: ClassVar[bool] = False
    # The typed model config of a default module (DefaultModelConfig or an algorithm's subclass of it):
    # set, the `model_config` given (a dict, None or a DefaultModelConfig) is parsed into one once, when
    # the module is constructed (spec build; clones carry the typed config), and `config()` returns it.
    # None (custom modules): `model_config` is kept as given, the module reads its own keys from it.
    model_config_class: ClassVar[Optional[type]] = None

    def __post_init__(self) -> None:
        config_cls = type(self).model_config_class
        if config_cls is not None and not isinstance(self.model_config, config_cls):
            # Before flax's __post_init__ freezes the fields (see ../shared/design/flax-notes.md).
            object.__setattr__(self, "model_config", config_cls.from_any(self.model_config))
        super().__post_init__()

    @nn.nowrap
    def config(self) -> Any:
        """The typed model config, parsed once at construction (a module with a `model_config_class`)."""
        if type(self).model_config_class is None:
            raise TypeError(f"{type(self).__name__}.config() needs a model_config_class (a DefaultModelConfig "
                            f"subclass); got None: read self.model_config, which is kept as given")
        return self.model_config

    def setup(self) -> None:
        """Build flax submodules as attributes here (call `super().setup()`)."""

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        """Fallback of all three phases; returns ACTIONS and/or ACTION_DIST_INPUTS."""
        return {}

    def _forward_inference(self, batch: dict, **kwargs: Any) -> dict:
        return self._forward(batch, **kwargs)

    def _forward_exploration(self, batch: dict, **kwargs: Any) -> dict:
        return self._forward(batch, **kwargs)

    def _forward_train(self, batch: dict, **kwargs: Any) -> dict:
        return self._forward(batch, **kwargs)

    def _init_all(self, batch: dict) -> None:
        """Touches every path a later call can take, so `init` creates all params."""
        self._forward_inference(batch)
        self._forward_exploration(batch)
        if self.inference_only:
            return
        fwd_out = self._forward_train(batch)
        if isinstance(self, ValueFunctionAPI):
            self._compute_values(batch)
            if Columns.EMBEDDINGS in fwd_out:
                self._compute_values(batch, embeddings=fwd_out[Columns.EMBEDDINGS])
        if isinstance(self, QNetAPI):
            self._compute_q_values(batch)
        if isinstance(self, TargetNetworkAPI):
            self._forward_target(batch)
        if isinstance(self, SelfSupervisedLossAPI):
            self.compute_self_supervised_loss(batch, fwd_out)

    # ----------------------------------------------------------------- spaces, state, dists
    @nn.nowrap
    def get_inference_action_dist_cls(self) -> type:
        return default_dist_cls(self._require_action_space())

    @nn.nowrap
    def get_exploration_action_dist_cls(self) -> type:
        return self.get_inference_action_dist_cls()

    @nn.nowrap
    def get_train_action_dist_cls(self) -> type:
        return self.get_inference_action_dist_cls()

    @nn.nowrap
    def get_initial_state(self) -> Any:
        """The recurrent state without batch axis; `{}` for stateless modules."""
        return {}

    @nn.nowrap
    def is_stateful(self) -> bool:
        state = self.get_initial_state()
        if not isinstance(state, Mapping):
            raise TypeError(f"get_initial_state() must return a dict; got {type(state).__name__}")
        return bool(state)

    @nn.nowrap
    def _require_action_space(self) -> gym.Space:
        if self.action_space is None:
            raise ValueError(f"{type(self).__name__} has no action_space; give one to pick a distribution.")
        return self.action_space

    @nn.nowrap
    def dummy_batch(self, batch_size: int = 1) -> dict:
        """A zero batch built from the spaces, used by `init` to create every param."""
        stateful = self.is_stateful()
        lead = (batch_size, 1) if stateful else (batch_size,)
        batch = {Columns.OBS: space_zeros(self.observation_space, lead, "observation"),
                 Columns.NEXT_OBS: space_zeros(self.observation_space, lead, "observation"),
                 Columns.REWARDS: jnp.zeros(lead), Columns.TERMINATEDS: jnp.zeros(lead, bool),
                 Columns.TRUNCATEDS: jnp.zeros(lead, bool)}
        if self.action_space is not None:
            batch[Columns.ACTIONS] = space_zeros(self.action_space, lead, "action")
        if stateful:
            batch[Columns.STATE_IN] = jax.tree_util.tree_map(
                lambda x: jnp.broadcast_to(x, (batch_size,) + x.shape), self.get_initial_state())
        return batch

    @nn.nowrap
    def _validate_batch(self, batch: Any) -> None:
        """Trace-time checks: runs only when a jitted function is traced, so it is free per call."""
        if not isinstance(batch, Mapping):
            raise TypeError(f"{type(self).__name__} expects a batch dict such as {{'obs': array}}; got {describe(batch)}")
        if Columns.OBS not in batch:
            raise ValueError(f"{type(self).__name__}: the batch is missing {Columns.OBS!r}; got keys {sorted(batch)}")
        if self.observation_space is not None:
            stateful = self.is_stateful()
            check_obs(self.observation_space, batch[Columns.OBS], 2 if stateful else 1)
            if stateful and Columns.STATE_IN not in batch:
                raise ValueError(f"{type(self).__name__} is stateful: the batch needs {Columns.STATE_IN!r} "
                                 f"shaped like get_initial_state() with a batch axis; got keys {sorted(batch)}")
            lead = check_lead_consistent(batch[Columns.OBS], 2 if stateful else 1, Columns.OBS)
            if stateful:
                check_state_in(self.get_initial_state(), batch[Columns.STATE_IN], lead[0])

    @nn.nowrap
    def _expected_params(self, phase: str) -> Any:
        """The `FlatSpec` params of `phase` must match (None when the module cannot be
        initialised on its own, e.g. a head fed by a shared encoder). Memoised per instance:
        the spec is a pure function of the frozen module's fields, built with `eval_shape`, so it
        holds no tracers and the memo changes no behaviour even when first filled inside a trace."""
        cache = self.__dict__.get("_param_specs")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_param_specs", cache)
        key = "acting" if phase in ("exploration", "inference") else "full"
        if key not in cache:
            if "full" not in cache:
                try:
                    cache["full"] = FlatSpec(jax.eval_shape(self.init_fn, jax.random.key(0)))
                except _NOT_INITIALISABLE_ALONE:  # the forward then reports its own error
                    cache["full"] = None
            full, drop = cache["full"], self._non_acting()
            cache["acting"] = full.without(drop) if full is not None and drop else full
        return cache[key]

    @nn.nowrap
    def _check_params(self, params: Any, phase: str, *, where: Optional[str] = None, root: str = "params",
                      lead: tuple = ()) -> None:
        """Trace-time: params must have the leaf paths, shapes and dtype kinds `init` gives."""
        expected = self._expected_params(phase)
        if expected is not None:
            if where is None:
                where = f"{type(self).__name__}.forward_{phase}" if phase in PHASES else f"{type(self).__name__}.{phase}"
            acting = phase in ("exploration", "inference")
            check_params(expected, params, where, ignore=self._non_acting() if acting else (), root=root, lead=lead)

    # ----------------------------------------------------------------- functional API
    @nn.nowrap
    def _cached(self, key: Any, build: Callable[[], Callable]) -> Callable:
        """One jitted closure per key per instance (linen modules are frozen and unhashable)."""
        cache = self.__dict__.get("_jit_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_jit_cache", cache)
        fn = cache.get(key)
        if fn is None:
            fn = cache[key] = build()
        return fn

    @nn.nowrap
    def init(self, rng: Any, *args: Any, **kwargs: Any) -> Any:
        """`init(rng) -> params`: a plain nested dict covering every forward path.

        With extra arguments this is flax's own `Module.init` (variables dict).
        """
        if args or kwargs or isinstance(rng, Mapping):
            return nn.Module.init(self, rng, *args, **kwargs)
        if self.observation_space is None:
            raise ValueError(f"{type(self).__name__} needs an observation_space to be initialised; got None.")
        return self._cached(("init",), lambda: jax.jit(self.init_fn))(rng)

    @nn.nowrap
    def init_fn(self, rng: jax.Array) -> dict:
        """The pure (un-jitted) body of `init`."""
        check_rng(rng, f"{type(self).__name__}.init", required=True)  # at trace time: no per-call cost
        batch = self.dummy_batch()
        params_rng, action_rng = jax.random.split(rng)
        try:
            variables = nn.Module.init(self, {"params": params_rng, "action": action_rng}, batch,
                                       method=RLModule._init_all)
        except KeyError as err:
            raise ValueError(
                f"{type(self).__name__} cannot be initialised from its spaces alone: its forward reads "
                f"column {err.args[0]!r}, which the dummy batch {sorted(batch)} lacks. Override "
                "dummy_batch(), or initialise it through its MultiRLModule."
            ) from None
        return dict(variables.get("params", {}))

    @nn.nowrap
    def phase_fn(self, phase: str) -> Callable:
        """The pure, un-jitted `(params, batch, rng, **kw) -> out` of a phase (for vmap/grad)."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}; got {phase!r}")

        def fn(params: Any, batch: dict, rng: Optional[jax.Array] = None, **kwargs: Any) -> dict:
            self._validate_batch(batch)
            if phase == "train" and self.inference_only:
                raise RuntimeError(f"{type(self).__name__} is inference_only: forward_train is not available.")
            check_rng(rng, f"{type(self).__name__}.forward_{phase}", required=phase == "exploration")
            self._check_params(params, phase)
            if rng is None:
                rng = jax.random.key(0)
            out = dict(self.apply({"params": params}, batch, method=f"_forward_{phase}",
                                  rngs={"action": rng}, **kwargs))
            return self.postprocess(phase, out, rng)

        return fn

    @nn.nowrap
    def postprocess(self, phase: str, out: dict, rng: jax.Array) -> dict:
        """Adds ACTIONS (sampled / deterministic) and ACTION_LOGP from ACTION_DIST_INPUTS."""
        if phase == "train" or Columns.ACTION_DIST_INPUTS not in out:
            return out
        if phase == "exploration":
            dist = self.get_exploration_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            if Columns.ACTIONS not in out:
                out[Columns.ACTIONS] = dist.sample(seed=rng)
            if Columns.ACTION_LOGP not in out:
                out[Columns.ACTION_LOGP] = dist.log_prob(out[Columns.ACTIONS])
        elif Columns.ACTIONS not in out:
            dist = self.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            out[Columns.ACTIONS] = dist.to_deterministic().sample(seed=rng)
        return out

    @nn.nowrap
    def _jitted_phase(self, phase: str, with_rng: bool) -> Callable:
        return self._cached((phase, with_rng), lambda: jax.jit(self.phase_fn(phase)))

    @nn.nowrap
    def _non_acting(self) -> frozenset:
        """Top-level params keys acting never reads (cached): the learner-only keys
        (InferenceOnlyAPI's non-inference attributes, e.g. PPO's critic) that the module's
        inference_only twin does without. A module that keeps one of them for acting (a
        recurrent critic whose state acting carries) has it in its twin, so it is kept."""
        drop = self.__dict__.get("_non_acting_keys")
        if drop is None:
            drop = self._inference_drops()
            if drop:
                twin = self if self.inference_only else self.clone(inference_only=True)
                try:
                    kept = jax.eval_shape(twin.init_fn, jax.random.key(0))
                except _NOT_INITIALISABLE_ALONE:  # nothing is dropped: jit still prunes unread leaves
                    kept = None
                drop = frozenset() if kept is None else drop - frozenset(kept)
            object.__setattr__(self, "_non_acting_keys", drop)
        return drop

    @nn.nowrap
    def _inference_drops(self) -> frozenset:
        """Top-level params keys of the non-inference attributes, also for an inference_only module
        (which then accepts the learner's params and ignores them when acting)."""
        if not isinstance(self, InferenceOnlyAPI):
            return frozenset()
        return frozenset(name.split(".")[0] for name in self.get_non_inference_attributes())

    @nn.nowrap
    def _acting_call(self, phase: str, with_rng: bool) -> tuple[Callable, tuple]:
        """`(jitted phase function, params keys to drop before calling it)`, kept in the instance
        under a plain attribute name so the per-call path is one dict lookup. Every check of the
        batch, params and rng runs inside the jitted function while it is traced (once per
        shape and structure), so after that a call is the bare compiled call."""
        name = f"_act_{phase}_{'rng' if with_rng else 'none'}"
        entry = self.__dict__.get(name)
        if entry is None:
            entry = (self._jitted_phase(phase, with_rng), tuple(sorted(self._non_acting())))
            object.__setattr__(self, name, entry)
        return entry

    @nn.nowrap
    def forward_exploration(self, params: Any, batch: dict, rng: jax.Array, **kwargs: Any) -> dict:
        """Sampled actions: `{ACTIONS, ACTION_LOGP, ACTION_DIST_INPUTS, ...}` each `[B, ...]`."""
        fn, drop = self.__dict__.get("_act_exploration_rng") or self._acting_call("exploration", True)
        if drop and type(params) is dict:
            params = _without(params, drop)
        return fn(params, batch, rng, **kwargs) if kwargs else fn(params, batch, rng)

    @nn.nowrap
    def forward_inference(self, params: Any, batch: dict, rng: Optional[jax.Array] = None, **kwargs: Any) -> dict:
        """Deterministic actions (argmax / mean) unless the module returns its own."""
        if rng is None:
            fn, drop = self.__dict__.get("_act_inference_none") or self._acting_call("inference", False)
            if drop and type(params) is dict:
                params = _without(params, drop)
            return fn(params, batch, **kwargs) if kwargs else fn(params, batch)
        fn, drop = self.__dict__.get("_act_inference_rng") or self._acting_call("inference", True)
        if drop and type(params) is dict:
            params = _without(params, drop)
        return fn(params, batch, rng, **kwargs) if kwargs else fn(params, batch, rng)

    @nn.nowrap
    def forward_train(self, params: Any, batch: dict, rng: Optional[jax.Array] = None, **kwargs: Any) -> dict:
        """What the loss needs (ACTION_DIST_INPUTS, EMBEDDINGS, ...); differentiable in params."""
        return self._call_phase("train", params, batch, rng, kwargs)

    @nn.nowrap
    def _call_phase(self, phase: str, params: Any, batch: dict, rng: Optional[jax.Array], kwargs: dict) -> dict:
        if rng is None:
            fn = self._jitted_phase(phase, False)
            return fn(params, batch, **kwargs) if kwargs else fn(params, batch)
        fn = self._jitted_phase(phase, True)
        return fn(params, batch, rng, **kwargs) if kwargs else fn(params, batch, rng)

    # ----------------------------------------------------------------- checkpoints
    @nn.nowrap
    def save_to_path(self, path: Any, params: Any) -> str:
        """Writes params (orbax) and metadata.json atomically; returns the path."""
        from jaxrl_modules.checkpoint import save_module

        return save_module(self, params, path)

    @nn.nowrap
    def restore_from_path(self, path: Any) -> Any:
        """Loads params saved by `save_to_path`, validating class, tree, shapes and dtypes."""
        from jaxrl_modules.checkpoint import restore_params

        return restore_params(self, path)

    @nn.nowrap
    def as_multi_rl_module(self) -> Any:
        """RLlib's: this module wrapped in a MultiRLModule under "default_policy". The import is
        deferred (MultiRLModule sits above this layer; see tests/test_import_graph.py)."""
        from jaxrl_modules.multi_rl_module import MultiRLModule
        from jaxrl_modules.rl_module_spec import RLModuleSpec

        return MultiRLModule(rl_module_specs={"default_policy": RLModuleSpec.from_module(self)})

    @classmethod
    def from_checkpoint(cls, path: Any) -> tuple["RLModule", Any]:
        """Rebuilds `(module, params)` from a checkpoint directory."""
        from jaxrl_modules.checkpoint import load_module

        return load_module(path, expected_cls=cls)
