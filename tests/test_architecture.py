"""The package's boundaries, checked from its source: no import cycle among bench's modules
(function-level imports included), and tasks that measure without drawing, storing or reaching
into each other's private helpers."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT

PACKAGE = PROJECT / "bench"


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(name: str) -> list[tuple[str, str, int]]:
    """(imported bench module, imported name or "", line) for every import in the module, at any depth."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names if alias.name.split(".")[0] == "bench"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "bench":
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append((child, "", node.lineno) if child in MODULES else (base, alias.name, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    """module -> the bench modules it imports (a package's __init__ counts as the package)."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, _, _ in imports(name):
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_benchs_modules() -> None:
    found = cycles(graph())
    assert not found, "import cycles (function-level imports included): " + "; ".join(" ↔ ".join(group) for group in found)


def test_a_planted_cycle_is_found() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


def test_tasks_measure_without_drawing_storing_or_borrowing_private_helpers() -> None:
    problems = []
    for name, path in MODULES.items():
        if not name.startswith("bench.tasks."):
            continue
        text = path.read_text(encoding="utf-8")
        if "matplotlib" in text:
            problems.append(f"{name} mentions matplotlib")
        for target, member, line in imports(name):
            if target in ("bench.store", "bench.plots") or target.startswith("bench.report"):
                problems.append(f"{name}:{line} imports {target}")
            if target.startswith("bench.tasks.") and member.startswith("_"):
                problems.append(f"{name}:{line} imports the private {member} of {target}")
    assert not problems, "; ".join(problems)


def third_party_imports(name: str) -> list[tuple[str, int]]:
    """(top-level package, line) for every import of another package, at any depth."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def test_tasks_report_through_the_command_lines_channel_and_never_print() -> None:
    problems = []
    for name, path in MODULES.items():
        if not name.startswith("bench.tasks"):
            continue
        problems += [f"{name}:{line} imports rich" for package, line in third_party_imports(name) if package == "rich"]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        problems += [f"{name}:{node.lineno} calls print" for node in ast.walk(tree)
                     if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert not problems, "; ".join(problems)


def test_boards_are_drawn_in_the_report_wing_by_one_markdown_writer() -> None:
    assert "bench.leaderboard" not in MODULES and "bench.report.leaderboard" in MODULES
    writers = []
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if '" | ".join(' in text:  # how a Markdown table's row is joined
            writers.append(name)
    assert writers == ["bench.report.render"], writers

