"""Every Python block of the README runs as written, each in a fresh interpreter."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs_as_written(index, tmp_path):
    result = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"README block {index} failed:\n{BLOCKS[index]}\n{result.stderr[-3000:]}"


def _literal_calls(method: str) -> list[dict]:
    """The literal keyword arguments of every `.method(...)` call in the README's Python blocks."""
    import ast

    found = []
    for block in BLOCKS:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method:
                found.append({k.arg: ast.literal_eval(k.value) for k in node.keywords
                              if k.arg and isinstance(k.value, (ast.Constant, ast.List, ast.Dict, ast.Tuple, ast.UnaryOp))})
    return found


def test_in_jit_examples_use_the_benchmark_settings():
    """The all-in-jit README examples sit next to the benchmark figures: same settings, same length."""
    sys.path.insert(0, str(README.parent / "bench"))
    import algorithms as bench_algorithms
    import ppo_cartpole
    from ppo_configs import ORTHOGONAL_64, PUREJAXRL

    training, models = _literal_calls("training"), [c.get("model_config") for c in _literal_calls("rl_module")]
    runners, lengths = _literal_calls("env_runners"), [c.get("num_iterations") for c in _literal_calls("build_train_fn")]
    assert PUREJAXRL in training and ORTHOGONAL_64 in models
    assert {"num_envs_per_env_runner": 4, "rollout_fragment_length": 128} in runners
    assert ppo_cartpole.TOTAL_STEPS // ppo_cartpole.STEPS_PER_ITER in lengths
    assert bench_algorithms.DQN_SETTINGS in training and bench_algorithms.DQN_MODEL in models
    assert bench_algorithms.SAC_SETTINGS in training and bench_algorithms.SAC_MODEL in models
    assert {"rollout_fragment_length": 1} in runners
    assert {"num_envs_per_env_runner": 1, "rollout_fragment_length": 1} in runners
    assert 40000 in lengths and 20000 in lengths  # bench/algorithms.py's jit_run iterations
