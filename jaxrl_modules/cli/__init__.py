"""`jaxrl-modules`: train with the default module, evaluate a checkpoint.

    jaxrl-modules train --algo ppo --env CartPole-v1 [--config lr=1e-3 fcnet_hiddens=[64,64]]
    jaxrl-modules train --resume runs/<name> --iterations 400     # continue a run (after Ctrl-C too)
    jaxrl-modules evaluate runs/<name> --episodes 10 [--record out.gif]
    jaxrl-modules config --algo ppo     # every --config setting with its default and type
    jaxrl-modules launch --num-processes 2 --devices-per-process 2 -- train --env gymnax:CartPole-v1 --num-learners auto

A bad command line prints one line `jaxrl-modules: error: <message>` and exits with code 2.
"""

from __future__ import annotations

import sys
from typing import Optional

from jaxrl_modules.cli.config_build import build_config, config_class, show_config
from jaxrl_modules.cli.parser import PROG, UsageError, build_parser
from jaxrl_modules.cli.plot import plot

__all__ = ["PROG", "UsageError", "build_config", "config_class", "main", "plot"]


def main(argv: Optional[list[str]] = None) -> int:
    """Runs the command; a bad command line prints one line `jaxrl-modules: error: ...` to stderr and
    raises `UsageError` (a SystemExit with code 2), never a traceback. Ctrl-C at any moment outside
    the training loop (which saves and returns 130 itself) prints one line and returns 130."""
    try:
        from jaxrl_modules.cli.evaluate import evaluate
        from jaxrl_modules.cli.processes import launch
        from jaxrl_modules.cli.train import train

        args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
        commands = {"train": train, "evaluate": evaluate, "config": show_config, "launch": launch}
        return commands[args.command](args)
    except UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
        raise
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        return 130
