"""BC as an Algorithm: each `train()` samples a batch of recorded transitions and updates
(the offline loop, `OfflineDriver`)."""

from __future__ import annotations

from typing import Optional

from jaxrl_modules.algorithms.bc.driver import OfflineDriver
from jaxrl_modules.algorithms.driver import DrivenAlgorithm, Driver


class BC(DrivenAlgorithm):
    """Behavior cloning from recorded transitions (`config.offline_data(input_=path)`)."""

    def _make_driver(self) -> Driver:
        return OfflineDriver(self.config)

    def evaluate(self, episodes: Optional[int] = None) -> dict:
        """As `Algorithm.evaluate`, on the configured env; a ValueError when there is none."""
        if self.config.env is None:
            raise ValueError("evaluate() needs an env: call config.environment(...)")
        return super().evaluate(episodes)
