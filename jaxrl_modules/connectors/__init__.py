"""Env-to-module connectors."""

from jaxrl_modules.connectors.flatten_observations import FlattenObservations

__all__ = ["FlattenObservations"]
