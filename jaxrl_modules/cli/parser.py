"""The command line's shared pieces: the program name, `UsageError` and the argument parser."""

from __future__ import annotations

import argparse
import sys
from typing import Any

PROG = "jaxrl-modules"


class UsageError(SystemExit):
    """A bad command line: `main` prints `jaxrl-modules: error: <message>` (one line) and the
    process exits with code 2, as argparse does. `str(err)` is the message."""

    def __init__(self, message: Any) -> None:
        super().__init__(2)
        self.message = " ".join(str(message).split())

    def __str__(self) -> str:
        return self.message


class _Parser(argparse.ArgumentParser):
    """argparse's own errors (a missing value, an int that is not one) as one line, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """As argparse's, plus `argv`: the command line parsed (`train --resume` tells the flags given from defaults)."""
        argv = list(sys.argv[1:] if args is None else args)
        parsed = super().parse_args(argv, namespace)
        parsed.argv = argv
        return parsed


def check_positive(flag: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{flag} must be an int >= 1; got {value}")


def learners_flag(value: str) -> Any:
    """`--num-learners`: an int >= 0 or "auto"."""
    if value == "auto":
        return value
    if not value.strip().isdigit():
        raise UsageError(f"--num-learners must be an int >= 0 or 'auto' (every device JAX sees); got {value!r}")
    return int(value)


def build_parser(description: str) -> argparse.ArgumentParser:
    """Every subcommand and flag; each command module reads the flags it owns."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = _Parser(prog=PROG, description=description, formatter_class=formatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an algorithm with its default module", formatter_class=formatter)
    t.add_argument("--algo", default="ppo", help="ppo, dqn, sac, or bc (bc: --config input_=<.npz or dir>)")
    t.add_argument("--env", default="CartPole-v1", help="gymnasium id, or gymnax:<id> / jaxmarl:<name> for the all-in-jit path")
    t.add_argument("--config", nargs="*", default=[],
                   help=f"overrides key=value (training or model settings; `{PROG} config --algo A` lists them)")
    t.add_argument("--iterations", type=int, default=200, help="training iterations (at most)")
    t.add_argument("--stop-reward", type=float, default=None,
                   help="stop at this return (a finite number; a negative one as --stop-reward=-1e3); None: the env's "
                        "reward threshold")
    t.add_argument("--num-envs", type=int, default=None, help="None: ppo 8, dqn 10, sac 1, bc 1")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.add_argument("--name", default=None,
                   help="run folder name: one folder inside --runs-dir (no path separator, not . or ..); None: "
                        "<algo>_<env>_<time>")
    t.add_argument("--runs-dir", default="runs", help="folder holding the run folders (created when missing)")
    t.add_argument("--log-every", type=int, default=10,
                   help="when stdout is not a terminal, one log line every N iterations instead of the progress bar")
    t.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    # run folder (jaxrl_modules/cli/train.py, run_folder.py)
    t.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its latest checkpoint, with its stored flags; only --iterations "
                        "(the total), --stop-reward, --checkpoint-every, --eval-every, --eval-episodes, --log-every and "
                        "--quiet may be given again to change them")
    t.add_argument("--overwrite", action="store_true",
                   help="replace an existing run folder of the same --name (only a folder `train` wrote all of is ever deleted: "
                        "its own config.json and nothing else but metrics.csv, run.json, learning_curve.png, tensorboard/, "
                        "checkpoints/)")
    t.add_argument("--checkpoint-every", type=int, default=10, metavar="K",
                   help="save a checkpoint every K iterations, at each evaluation and at the end (the last 3 are kept, "
                        "plus the best by evaluation return)")
    t.add_argument("--eval-every", type=int, default=0, metavar="K",
                   help="every K iterations run --eval-episodes deterministic episodes on a separate env; 0: never")
    t.add_argument("--eval-episodes", type=int, default=5, metavar="M", help="episodes per evaluation")
    # envs (jaxrl_modules/cli/envs.py)
    t.add_argument("--env-config", nargs="*", default=[], metavar="KEY=VALUE", help="env constructor kwargs")
    t.add_argument("--flatten-obs", action="store_true",
                   help="flatten observations (Discrete -> one-hot, Dict/Tuple -> concatenated) with FlattenObservations")
    t.add_argument("--atari", action="store_true",
                   help="wrap ale_py:ALE/<Game>-v5 envs with wrap_atari_for_new_api_stack (pip install .[atari])")
    # seeds (jaxrl_modules/cli/seeds.py)
    t.add_argument("--num-seeds", type=int, default=1, metavar="N",
                   help="gymnax/JaxMARL envs: train N seeds (seed, seed+1, ...) vmapped in one jit")
    # scaling out (jaxrl_modules/algorithms/data_parallel.py, jaxrl_modules/cli/processes.py)
    t.add_argument("--num-learners", type=learners_flag, default=0, metavar="N",
                   help="data-parallel learners: N devices (auto: all of them, every process's); the train batch per "
                        "learner (train_batch_size_per_learner) and minibatch_size are per device")
    t.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="multi-process: process 0's address (or JAX_COORDINATOR_ADDRESS); with --num-processes and "
                        "--process-id. Process 0 writes the run folder")
    t.add_argument("--num-processes", type=int, default=None, metavar="P", help="multi-process: processes in the run "
                   "(or JAX_NUM_PROCESSES)")
    t.add_argument("--process-id", type=int, default=None, metavar="I", help="multi-process: this process's index in "
                   "[0, P) (or JAX_PROCESS_ID)")
    la = sub.add_parser("launch", help="try a multi-process run on this machine: launch --num-processes P -- train ...",
                        formatter_class=formatter)
    la.add_argument("--num-processes", type=int, default=2, metavar="P", help="processes to start")
    la.add_argument("--devices-per-process", type=int, default=None, metavar="D",
                    help="CPU: devices each process emulates (XLA_FLAGS=--xla_force_host_platform_device_count=D)")
    la.add_argument("--port", type=int, default=0, help="coordinator port on 127.0.0.1 (0: a free one)")
    la.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- train ...", help="the train command to run")
    e = sub.add_parser("evaluate", help="roll out a saved module with deterministic actions", formatter_class=formatter)
    e.add_argument("checkpoint", help="runs/<name>/checkpoints/<iteration>/algorithm or a saved module directory")
    e.add_argument("--episodes", type=int, default=10, help="episodes to roll out")
    e.add_argument("--env", default=None, help="gymnasium id; None: the env of the run the checkpoint is in")
    e.add_argument("--stochastic", action="store_true", help="sample actions instead of the greedy/mean action")
    e.add_argument("--seed", type=int, default=0, help="random seed of the env resets and sampled actions")
    e.add_argument("--record", default=None, metavar="OUT", help="save one rendered episode as a .gif or .mp4")
    c = sub.add_parser("config", help="print every --config setting with its default and type", formatter_class=formatter)
    c.add_argument("--algo", default="ppo", help="ppo, dqn, sac, or bc")
    return parser


