"""`jaxrl-modules evaluate`: roll a checkpoint out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from jaxrl_modules.cli.parser import UsageError, check_positive


def _find_env(checkpoint: Path) -> Optional[str]:
    for candidate in (checkpoint, *checkpoint.parents):
        run = candidate / "run.json"
        if run.is_file():
            return json.loads(run.read_text())["env"]
    return None


def evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from jaxrl_modules.algorithms.algorithm import COMPONENT_PREFIX
    from jaxrl_modules.algorithms.env_runner import evaluate_policy
    from jaxrl_modules.columns import DEFAULT_MODULE_ID
    from jaxrl_modules.rl_module import RLModule

    check_positive("--episodes", args.episodes)  # before anything is loaded
    path = Path(args.checkpoint)
    if not path.is_dir():
        raise UsageError(f"No checkpoint at {str(path)!r}: expected a checkpoint directory "
                         f"(runs/<name>/checkpoints/final or a saved module), got {'a file' if path.exists() else 'nothing'}")
    module_dir = path / COMPONENT_PREFIX / DEFAULT_MODULE_ID if (path / "algorithm.json").is_file() else path
    try:
        module, params = RLModule.from_checkpoint(module_dir)
    except ValueError as err:
        raise UsageError(str(err)) from None
    env = args.env or _find_env(path)
    if env is None:
        raise UsageError("Cannot tell which env this checkpoint was trained on; pass --env")
    if env.startswith("gymnax:"):
        raise UsageError("evaluate rolls out gymnasium envs; pass --env with the gymnasium id (e.g. CartPole-v1)")
    from jaxrl_modules.algorithms.algorithm_config import AlgorithmConfig

    try:
        returns = evaluate_policy(AlgorithmConfig().environment(env), module, params, args.episodes)
    except (TypeError, ValueError) as err:
        raise UsageError(f"Cannot evaluate {str(path)!r} on --env {env!r}: {err}") from None
    print(f"mean return over {len(returns)} episodes: {np.mean(returns):.1f} (min {np.min(returns):.1f}, "
          f"max {np.max(returns):.1f})")
    return 0
