"""The shape a newcomer relies on: no import circle among the project's modules (deferred
imports inside functions included), and a `maintenance/` framework of a few named packages
that form a one-way stack (docs/architecture.md draws it)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("pluggedin", "maintenance", "emails", "oauth")
MAX_TOP_LEVEL_MODULES = 12
# The packages of maintenance/, lowest first: each may import only those before it.
STACK = (
    "logs",
    "schedules",
    "checks",
    "runs",
    "tables",
    "observe",
    "triggers",
    "admin",
    "management",
    "templatetags",
)


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


def imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports, at load time or later inside a function (but not
    under TYPE_CHECKING); `from a import b` counts `a.b` when `b` is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            source = node.module if not node.level else ".".join(filter(None, [base, node.module]))
            names = [source] + [f"{source}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in modules)
    return found


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.extend(_import_nodes(ast.Module(body=node.orelse, type_ignores=[])))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        else:
            found.extend(_import_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {name: imports(name, path, modules) - {name} for name, path in modules.items()}
    # Naming a parent package (`from maintenance import registry`) is not a circle back up.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    return graph


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
    graph = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_a_deferred_import_is_seen():
    """The circles of old hid in imports inside functions: the graph must see them."""
    modules = project_modules()
    found = imports("maintenance.apps", modules["maintenance.apps"], modules)
    assert "maintenance.observe.observers" in found


def package_of(module: str) -> str | None:
    """`runs` for `maintenance.runs.runner`; None for a top-level module of maintenance."""
    parts = module.split(".")
    if parts[0] != "maintenance" or len(parts) < 3:
        return None
    return parts[1]


def test_the_packages_of_maintenance_form_a_one_way_stack():
    """Each package imports only the packages below it in STACK (top-level modules such
    as `models`, `registry` and `conf` are the ground everything stands on)."""
    below: dict[str, set[str]] = {}
    for depth, package in enumerate(STACK):
        below[package] = set(STACK[:depth])
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in import_graph().items()
        for target in targets
        if (a := package_of(source)) and (b := package_of(target)) and a != b
        and b not in below[a]
    )  # fmt: skip
    assert wrong == []


def test_the_framework_is_a_few_named_packages():
    top = sorted(p.name for p in (ROOT / "maintenance").glob("*.py"))
    packages = sorted(
        p.name for p in (ROOT / "maintenance").iterdir() if (p / "__init__.py").is_file()
    )
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    assert sorted(STACK) == sorted(p for p in packages if p != "migrations")
