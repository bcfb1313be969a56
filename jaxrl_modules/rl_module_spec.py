"""RLModuleSpec: everything needed to build an RLModule (RLlib's dataclass)."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass
class RLModuleSpec:
    """`build()` constructs `module_class(observation_space=..., action_space=..., ...)`.

    `learner_only` is a spec flag (never passed to the module), as in RLlib. Missing spaces
    are filled in from the env by an algorithm config.
    """

    module_class: Optional[type] = None
    observation_space: Any = None
    action_space: Any = None
    inference_only: bool = False
    learner_only: bool = False
    model_config: Any = None
    load_state_path: Optional[str] = None

    def build(self, **module_kwargs: Any) -> Any:
        if self.module_class is None:
            raise ValueError("RLModuleSpec.build() needs module_class; got None.")
        if self.observation_space is None:
            raise ValueError(
                f"RLModuleSpec.build() for {self.module_class.__name__} needs an observation_space; got None "
                "(an algorithm config fills it in from the env)."
            )
        return self.module_class(
            observation_space=self.observation_space,
            action_space=self.action_space,
            inference_only=self.inference_only,
            model_config=self.model_config,
            **module_kwargs,
        )

    @classmethod
    def from_module(cls, module: Any) -> "RLModuleSpec":
        if module.is_multi_rl_module:
            raise ValueError("RLModuleSpec.from_module() takes a single RLModule; use MultiRLModuleSpec.from_module().")
        return cls(type(module), module.observation_space, module.action_space, module.inference_only,
                   False, module.model_config)

    def as_multi_rl_module_spec(self) -> Any:
        """RLlib's: a MultiRLModuleSpec holding this spec under "default_policy". The import is
        deferred (MultiRLModuleSpec sits above this layer; see tests/test_import_graph.py)."""
        from jaxrl_modules.multi_rl_module import MultiRLModuleSpec

        return MultiRLModuleSpec(rl_module_specs={"default_policy": self})

    def update(self, other: "RLModuleSpec", override: bool = True) -> "RLModuleSpec":
        """RLlib's merge: with override, `other`'s set fields win; else only fill gaps."""
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "inference_only":
                setattr(self, f.name, bool(mine or theirs) if override else mine)
            elif f.name == "learner_only":
                setattr(self, f.name, bool(mine and theirs) if override else mine)
            elif (override and theirs is not None) or (not override and mine is None):
                setattr(self, f.name, theirs)
        return self
