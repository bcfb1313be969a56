"""Algorithms, one folder each: `ppo`, `bc`."""
