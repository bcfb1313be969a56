"""BC: the default module, offline data, the learner and the config."""

from jaxrl_modules.algorithms.bc.config import BCConfig
from jaxrl_modules.algorithms.bc.module import DefaultBCRLModule
from jaxrl_modules.algorithms.bc.offline import load_transitions, record_transitions

__all__ = ["BCConfig", "DefaultBCRLModule", "load_transitions", "record_transitions"]
