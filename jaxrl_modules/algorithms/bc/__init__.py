"""BC: the default module."""

from jaxrl_modules.algorithms.bc.module import DefaultBCRLModule

__all__ = ["DefaultBCRLModule"]
