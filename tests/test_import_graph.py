"""The package's import graph flows one way: core <- algorithms <- cli, with no cycles.

The core is every module outside `jaxrl_modules.algorithms` and `jaxrl_modules.cli` (columns,
spaces, distributions, models, rl_module, multi_rl_module, checkpoint, envs, ...). The graph is
read from the source with `ast`: every `import` and `from ... import` counts, inside functions
and `if TYPE_CHECKING:` blocks too, since a lazy import is still a dependency.
"""

import ast
import subprocess
import sys
from pathlib import Path
from typing import Callable

import jaxrl_modules

PACKAGE_DIR = Path(jaxrl_modules.__file__).parent
PACKAGE = PACKAGE_DIR.name


def _module_files() -> dict[str, tuple[Path, bool]]:
    """`{dotted module name: (file, is a package __init__)}` of every .py in the package."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imported(node: ast.AST, package: str, modules: dict) -> list[str]:
    """The package modules an import node loads; `from pkg import sub` names the submodule."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:  # relative: `.` is this module's package, each further dot one level up
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target for alias in node.names]


def import_graph() -> dict[str, dict[str, str]]:
    """`{module: {imported package module: "file:line" of the first such import}}`."""
    modules = _module_files()
    graph: dict[str, dict[str, str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        edges: dict[str, str] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _imported(node, package, modules):
                if target != name and (target == PACKAGE or target.startswith(PACKAGE + ".")):
                    assert target in modules, f"{path}:{node.lineno} imports {target}, which is not a module of the package"
                    edges.setdefault(target, f"{path.relative_to(PACKAGE_DIR.parent)}:{node.lineno}")
        graph[name] = edges
    return graph


def _in(module: str, subpackage: str) -> bool:
    full = f"{PACKAGE}.{subpackage}"
    return module == full or module.startswith(full + ".")


def _is_core(module: str) -> bool:
    return not (_in(module, "algorithms") or _in(module, "cli"))


def _find_cycle(graph: dict[str, dict[str, str]]) -> list[str]:
    """One cycle `[a, b, ..., a]` of the graph (depth-first search), or [] when it has none."""
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def _offending(graph: dict, source: Callable[[str], bool], target: Callable[[str], bool]) -> list[str]:
    return [f"{where}: {mod} imports {dep}" for mod, deps in sorted(graph.items()) if source(mod)
            for dep, where in sorted(deps.items()) if target(dep)]


def test_the_graph_sees_lazy_relative_and_submodule_imports():
    modules = _module_files()
    source = ast.parse(
        "from . import registry\n"                          # relative, a submodule by name
        "from ..columns import Columns\n"                   # relative, a name of a module
        "def f():\n"
        "    from jaxrl_modules.envs import registry\n"     # lazy, a submodule by name
        "    import jaxrl_modules.checkpoint\n")
    found = [t for node in ast.walk(source) for t in _imported(node, f"{PACKAGE}.envs", modules)]
    assert sorted(found) == sorted([f"{PACKAGE}.envs.registry", f"{PACKAGE}.columns", f"{PACKAGE}.envs.registry",
                                    f"{PACKAGE}.checkpoint"])
    graph = import_graph()
    assert f"{PACKAGE}.checkpoint" in graph[f"{PACKAGE}.rl_module"]  # imported inside save_to_path
    assert f"{PACKAGE}.envs.registry" in graph[f"{PACKAGE}.algorithms"]  # a package __init__'s edge
    assert _find_cycle({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}}) == ["a", "b", "c", "a"]


def test_core_never_imports_algorithms_or_cli():
    graph = import_graph()
    bad = _offending(graph, _is_core, lambda dep: not _is_core(dep))
    assert not bad, "the core imports algorithms/cli:\n" + "\n".join(bad)


def test_algorithms_never_import_cli():
    graph = import_graph()
    bad = _offending(graph, lambda mod: _in(mod, "algorithms"), lambda dep: _in(dep, "cli"))
    assert not bad, "algorithms import the cli:\n" + "\n".join(bad)


# Deferred (function-level) imports of a higher layer that RLlib's API needs: a method of the lower
# layer returns the higher layer's object. They run only when called, after both modules are loaded,
# so they create no import-time cycle; each is listed here with its reason and no other is allowed.
DEFERRED_UPWARD = {
    ("jaxrl_modules.rl_module", "jaxrl_modules.multi_rl_module"): "RLModule.as_multi_rl_module()",
    ("jaxrl_modules.rl_module_spec", "jaxrl_modules.multi_rl_module"): "RLModuleSpec.as_multi_rl_module_spec()",
}


def test_no_import_cycles():
    graph = import_graph()
    for (source, target), method in DEFERRED_UPWARD.items():
        assert target in graph[source], f"{method} no longer imports {target}: drop it from DEFERRED_UPWARD"
        del graph[source][target]
    cycle = _find_cycle(graph)
    where = [graph[a][b] for a, b in zip(cycle, cycle[1:])]
    assert not cycle, "import cycle " + " -> ".join(cycle) + "\n" + "\n".join(where)


def test_importing_the_package_and_its_public_names_loads_no_algorithm():
    script = (
        "import sys\n"
        "import jaxrl_modules\n"
        "def loaded(): return sorted(m for m in sys.modules if m.startswith('jaxrl_modules.algorithms'))\n"
        "assert not loaded(), loaded()\n"
        "from jaxrl_modules import RLModule, RLModuleSpec, MultiRLModule, DefaultModelConfig, register_env\n"
        "assert not loaded(), loaded()\n"
        "from jaxrl_modules.algorithms import register_env as algorithms_register_env\n"
        "assert algorithms_register_env is register_env\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_rllib_single_to_multi_conversions_still_work():
    import gymnasium as gym

    from jaxrl_modules import MultiRLModule, MultiRLModuleSpec, RLModuleSpec
    from jaxrl_modules.algorithms.ppo import DefaultPPORLModule

    spec = RLModuleSpec(DefaultPPORLModule, gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2),
                        model_config={"fcnet_hiddens": [4]})
    multi_spec = spec.as_multi_rl_module_spec()
    assert isinstance(multi_spec, MultiRLModuleSpec) and multi_spec.rl_module_specs == {"default_policy": spec}
    multi = spec.build().as_multi_rl_module()
    assert isinstance(multi, MultiRLModule) and list(multi.keys()) == ["default_policy"]
