"""The learning curve PNG of a run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

def _loss_column(rows: list[dict]) -> Optional[str]:
    """The loss to plot when no episode finished (BC learns from recorded data and has no returns)."""
    keys = [k for k in rows[0] if k.endswith("loss")]
    for preferred in ("total_loss", "policy_loss"):
        for key in keys:
            if key.split("/")[-1] == preferred:
                return key
    return keys[0] if keys else None


def plot(rows: list[dict], path: Path, title: str) -> str:
    """Plots the mean episode return, or (no finished episode, as in BC) the loss; returns the y label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    has_returns = any(math.isfinite(r["episode_return_mean"]) for r in rows)
    loss = None if has_returns else _loss_column(rows)
    if loss is None:
        ax.plot([r["num_env_steps_sampled_lifetime"] for r in rows], [r["episode_return_mean"] for r in rows])
        ax.set_xlabel("env steps")
        ax.set_ylabel("episode return (mean)")
    else:
        ax.plot([r["iteration"] for r in rows], [r[loss] for r in rows])
        ax.set_xlabel("training iteration")
        ax.set_ylabel(loss)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return ax.get_ylabel()
