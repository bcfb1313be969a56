"""The learning curve PNG of a run: `episode_return_mean` against env steps (per seed with `--num-seeds`:
`num_env_steps_sampled_lifetime_per_seed`, or the summed `num_env_steps_sampled_lifetime` / the number of seeds).

`episode_return_mean` is the mean return of the episodes that ended in each iteration (carried
forward when none ended). With per-seed columns `seed_<i>/episode_return_mean` (`--num-seeds`) the
curve is their mean with a min-max band; evaluation returns (`evaluation/episode_return_mean`) are
drawn as points. Runs without returns (BC learns from recorded data) plot their loss instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

RETURN_LABEL = "episode return\n(mean of the episodes ended in each iteration)"
EVAL_COLUMN = "evaluation/episode_return_mean"
STEPS_PER_SEED = "num_env_steps_sampled_lifetime_per_seed"
_SEED = re.compile(r"^seed_(\d+)/episode_return_mean$")


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _loss_column(rows: list[dict]) -> Optional[str]:
    """The loss to plot when no episode finished (BC learns from recorded data and has no returns)."""
    keys = [k for k in rows[0] if k.endswith("loss")]
    for preferred in ("total_loss", "policy_loss"):
        for key in keys:
            if key.split("/")[-1] == preferred:
                return key
    return keys[0] if keys else None


def seed_columns(rows: list[dict]) -> list[str]:
    """The per-seed return columns, by seed index."""
    found = {int(m.group(1)): key for key in rows[0] for m in [_SEED.match(key)] if m}
    return [found[i] for i in sorted(found)]


def plot(rows: list[dict], path: Path, title: str) -> str:
    """Plots the mean episode return (per-seed band and evaluation points when present), or (no
    finished episode, as in BC) the loss, into `path`; returns the y label."""
    return _plot(rows, path, title)[1]


def _plot(rows: list[dict], path: Path, title: str) -> tuple[str, str]:
    """`plot`; returns the (x, y) labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.8))
    returns = np.array([_float(r.get("episode_return_mean")) for r in rows])
    loss = None if np.isfinite(returns).any() else _loss_column(rows)
    if loss is None:
        seeds = seed_columns(rows)
        steps = np.array([_float(r.get("num_env_steps_sampled_lifetime")) for r in rows])
        if seeds:  # the CSV's count is summed over the seeds; the axis is each seed's
            own = np.array([_float(r.get(STEPS_PER_SEED)) for r in rows])
            steps = own if np.isfinite(own).all() else steps / len(seeds)
            per_seed = np.array([[_float(r.get(k)) for k in seeds] for r in rows])
            with np.errstate(all="ignore"):
                shown = np.isfinite(per_seed).any(axis=1)
                low, high = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
                low[shown], high[shown] = np.nanmin(per_seed[shown], axis=1), np.nanmax(per_seed[shown], axis=1)
                mean = np.full(len(rows), np.nan)
                mean[shown] = np.nanmean(per_seed[shown], axis=1)
            ax.fill_between(steps, low, high, alpha=0.25, label=f"min-max over {len(seeds)} seeds")
            ax.plot(steps, mean, label=f"mean over {len(seeds)} seeds")
        else:
            ax.plot(steps, returns, label="training")
        evaluation = np.array([_float(r.get(EVAL_COLUMN)) for r in rows])
        if np.isfinite(evaluation).any():
            ax.plot(steps, evaluation, "o", markersize=4, label="evaluation (deterministic)")
        if seeds or np.isfinite(evaluation).any():
            ax.legend(fontsize=8)
        ax.set_xlabel("env steps per seed" if seeds else "env steps")
        ax.set_ylabel(RETURN_LABEL, fontsize=9)
    else:
        ax.plot([_float(r.get("iteration")) for r in rows], [_float(r.get(loss)) for r in rows])
        ax.set_xlabel("training iteration")
        ax.set_ylabel(loss)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return ax.get_xlabel(), ax.get_ylabel()

