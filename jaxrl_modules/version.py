"""The library version, in a module of its own so the checkpoint writer can record it without
importing the package `__init__` (which would close an import cycle)."""

__version__ = "0.1.0"
