"""jaxrl_modules: RLlib's RLModule system as a functional JAX/Flax library.

The public names are imported on first use (PEP 562), so `import jaxrl_modules.cli` does not
load JAX: the command line handles Ctrl-C from its first instant. Nothing here loads
`jaxrl_modules.algorithms`: the core never imports the algorithms (tests/test_import_graph.py)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jaxrl_modules.version import __version__

_EXPORTS = {
    "register_env": "jaxrl_modules.envs.registry",
    "Columns": "jaxrl_modules.columns",
    "DEFAULT_MODULE_ID": "jaxrl_modules.columns",
    "DefaultModelConfig": "jaxrl_modules.model_config",
    "MultiRLModule": "jaxrl_modules.multi_rl_module",
    "MultiRLModuleSpec": "jaxrl_modules.multi_rl_module",
    "RLModule": "jaxrl_modules.rl_module",
    "RLModuleSpec": "jaxrl_modules.rl_module_spec",
}

__all__ = [
    "Columns", "DEFAULT_MODULE_ID", "DefaultModelConfig", "RLModule", "RLModuleSpec",
    "MultiRLModule", "MultiRLModuleSpec", "register_env", "__version__",
]

if TYPE_CHECKING:
    from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns
    from jaxrl_modules.envs.registry import register_env
    from jaxrl_modules.model_config import DefaultModelConfig
    from jaxrl_modules.multi_rl_module import MultiRLModule, MultiRLModuleSpec
    from jaxrl_modules.rl_module import RLModule
    from jaxrl_modules.rl_module_spec import RLModuleSpec


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'jaxrl_modules' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
