"""The shape a newcomer relies on: no import circle among the project's modules, and a
`maintenance/` framework of a few named packages rather than a flat heap."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("pluggedin", "maintenance", "emails", "oauth")
MAX_TOP_LEVEL_MODULES = 12


def project_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def module_level_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports when it is loaded (not inside functions, not
    under TYPE_CHECKING); `from a import b` counts `a.b` when `b` is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            source = node.module if not node.level else ".".join(filter(None, [base, node.module]))
            names = [source] + [f"{source}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in modules)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_itself_through_others():
    modules = project_modules()
    graph = {
        name: module_level_imports(name, path, modules) - {name} for name, path in modules.items()
    }
    # Naming a parent package (`from maintenance import registry`) is not a circle back up.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_framework_is_a_few_named_packages():
    top = sorted(p.name for p in (ROOT / "maintenance").glob("*.py"))
    packages = sorted(
        p.name for p in (ROOT / "maintenance").iterdir() if (p / "__init__.py").is_file()
    )
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    for package in ("runs", "triggers", "observe", "checks", "admin", "schedules", "tables"):
        assert package in packages
