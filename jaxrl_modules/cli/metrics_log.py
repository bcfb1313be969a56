"""Per-iteration logging of `jaxrl-modules train`: `metrics.csv` rows and TensorBoard scalars.

CSV columns: `iteration`, `num_env_steps_sampled_lifetime` (with `--num-seeds` N: summed over the N
seeds; then `num_env_steps_sampled_lifetime_per_seed` follows, each seed's own count, the curve's x axis),
`episode_return_mean`, `time_this_iter_s`, the learner metrics as `<module_id>/<metric>`, then
`seed_<i>/episode_return_mean` (`--num-seeds`) and `evaluation/episode_return_mean` (`--eval-every`;
empty on iterations without an evaluation). The
header is written with the first row (its keys plus those known columns); a key that first appears in
a later row adds a column at the end (the file is rewritten once, earlier rows get an empty cell), and
a column a row lacks is left empty. Each row is flushed as it is written. On `--resume` the rows after
the restored iteration (written by the interrupted run after its last checkpoint) are dropped, so
there is one row per iteration.

TensorBoard (`tensorboardX.SummaryWriter`, step = training iteration): every finite scalar of the
result by its path (`env_runners/episode_return_mean`, `learners/default_policy/policy_loss`, ...),
`perf/env_steps_per_s`, `perf/time_this_iter_s`, `evaluation/episode_return_mean`,
`seed_<i>/episode_return_mean`. A resumed run's writer purges the events after the restored iteration.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from pathlib import Path
from typing import Any, Optional

from jaxrl_modules.cli.run_folder import EVAL_COLUMN

STEPS, RETURN = "num_env_steps_sampled_lifetime", "episode_return_mean"
STEPS_PER_SEED = STEPS + "_per_seed"  # --num-seeds: STEPS is summed over the seeds


def seed_column(index: int) -> str:
    return f"seed_{index}/{RETURN}"


def csv_row(result: dict, evaluation: Optional[dict] = None) -> dict:
    """The CSV row of one `train()` result (and its `evaluate()` result, if any)."""
    row = {"iteration": result["training_iteration"], STEPS: result[STEPS]}
    seeds = result.get("seeds") or []
    if seeds:
        row[STEPS_PER_SEED] = seeds[0].get(STEPS, int(result[STEPS]) // len(seeds))  # every seed samples as many
    row.update({RETURN: result["env_runners"][RETURN], "time_this_iter_s": result["time_this_iter_s"]})
    for mid, metrics in result.get("learners", {}).items():
        row.update({f"{mid}/{k}": v for k, v in metrics.items() if _is_number(v)})
    for i, seed in enumerate(seeds):
        row[seed_column(i)] = seed["env_runners"][RETURN]
    if evaluation is not None:
        row[EVAL_COLUMN] = evaluation["env_runners"][RETURN]
    return row


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real)  # Python and NumPy ints, floats and bools


def _scalars(tree: Any, prefix: str, out: dict) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            _scalars(value, f"{prefix}/{key}" if prefix else str(key), out)
    elif _is_number(tree) and math.isfinite(float(tree)):
        out[prefix] = float(tree)


def tensorboard_scalars(result: dict, row: dict, previous_steps: int) -> dict:
    """TensorBoard tags and values of one iteration (non-finite values left out)."""
    out: dict = {}
    _scalars({k: v for k, v in result.items() if k not in ("seeds", "training_iteration", "time_this_iter_s")}, "", out)
    for key in [k for k in out if "/" not in k]:  # top-level counters (num_env_steps_sampled_lifetime, ...)
        out[f"counters/{key}"] = out.pop(key)
    seconds = float(result["time_this_iter_s"])
    out["perf/time_this_iter_s"] = seconds
    if seconds > 0:
        out["perf/env_steps_per_s"] = (int(result[STEPS]) - previous_steps) / seconds
    for key in [k for k in row if k.startswith("seed_") or k == EVAL_COLUMN]:
        _scalars(row[key], key, out)
    return out


def _number(text: str) -> Any:
    """A CSV cell read back: an int, a float (NaN for an empty cell) or the text."""
    if text in ("", None):
        return float("nan")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class MetricsLog:
    """metrics.csv (open once, header once, a flushed row per iteration) and the TensorBoard writer.
    `rows` holds every row of the run (those kept from before a resume, then the new ones) for the curve."""

    def __init__(self, csv_path: Path, tensorboard_dir: Path, extra_columns: list[str], resume_at: Optional[int] = None):
        from tensorboardX import SummaryWriter

        self.csv_path, self.extra_columns = Path(csv_path), list(extra_columns)
        self.rows: list[dict] = []
        self.fieldnames: Optional[list[str]] = None
        if resume_at is not None and self.csv_path.is_file():
            self._keep_rows_up_to(resume_at)
        self._file = open(self.csv_path, "a" if self.fieldnames else "w", newline="")
        self._writer: Optional[csv.DictWriter] = None
        if self.fieldnames:
            self._writer = csv.DictWriter(self._file, fieldnames=self.fieldnames, restval="", extrasaction="ignore")
        purge = None if resume_at is None else resume_at + 1
        # a file of its own per writer: the default name (time in seconds, host) repeats when a resume starts quickly
        suffix = f".{os.getpid()}.{resume_at or 0}"
        self.tensorboard = SummaryWriter(logdir=str(tensorboard_dir), purge_step=purge, flush_secs=5, filename_suffix=suffix)

    def _rewrite(self, keep: Any, new_columns: list[str]) -> list[dict]:
        """Rewrites the CSV (atomically) with the rows `keep(row)` accepts and `new_columns` added; returns the rows kept."""
        with open(self.csv_path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            kept = [r for r in reader if keep(r)]
        if not header:
            return []
        self.fieldnames = header + [c for c in new_columns if c not in header]
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fieldnames, restval="")
            writer.writeheader()
            writer.writerows(kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.csv_path)
        return kept

    def _keep_rows_up_to(self, iteration: int) -> None:
        """Drops the rows after `iteration` and adds the missing known columns."""
        kept = self._rewrite(lambda r: _number(r.get("iteration", "")) <= iteration, self.extra_columns)
        self.rows = [{k: _number(v) for k, v in r.items()} for r in kept]

    def _add_columns(self, columns: list[str]) -> None:
        """A row brought keys the header lacks: they become new columns (earlier rows: empty cells)."""
        self._file.close()
        self._rewrite(lambda r: True, columns)
        self._file = open(self.csv_path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.fieldnames, restval="", extrasaction="ignore")

    @property
    def last_steps(self) -> int:
        return int(self.rows[-1][STEPS]) if self.rows else 0

    def write(self, result: dict, row: dict) -> None:
        """Appends `row` to the CSV (flushed) and the iteration's scalars to TensorBoard."""
        scalars = tensorboard_scalars(result, row, self.last_steps)
        if self._writer is None:
            self.fieldnames = list(row) + [c for c in self.extra_columns if c not in row]
            self._writer = csv.DictWriter(self._file, fieldnames=self.fieldnames, restval="", extrasaction="ignore")
            self._writer.writeheader()
        elif any(k not in self.fieldnames for k in row):
            self._add_columns([k for k in row if k not in self.fieldnames])
        self._writer.writerow(row)
        self._file.flush()
        step = int(row["iteration"])
        for tag, value in scalars.items():
            self.tensorboard.add_scalar(tag, value, step)
        self.tensorboard.flush()
        self.rows.append(dict(row))

    def close(self) -> None:
        self._file.close()
        self.tensorboard.close()
