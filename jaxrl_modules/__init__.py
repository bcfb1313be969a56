"""jaxrl_modules: RLlib's RLModule system as a functional JAX/Flax library."""

from jaxrl_modules.algorithms.registry import register_env
from jaxrl_modules.columns import DEFAULT_MODULE_ID, Columns
from jaxrl_modules.model_config import DefaultModelConfig
from jaxrl_modules.multi_rl_module import MultiRLModule, MultiRLModuleSpec
from jaxrl_modules.rl_module import RLModule
from jaxrl_modules.rl_module_spec import RLModuleSpec

__version__ = "0.1.0"

__all__ = [
    "Columns", "DEFAULT_MODULE_ID", "DefaultModelConfig", "RLModule", "RLModuleSpec",
    "MultiRLModule", "MultiRLModuleSpec", "register_env", "__version__",
]
