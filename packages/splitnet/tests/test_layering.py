"""splitnet's modules form layers: no import circle, no private name taken from a sibling."""

from __future__ import annotations

import ast
from pathlib import Path

import splitnet

PACKAGE = Path(splitnet.__file__).parent


def intra_package_imports() -> dict[str, list[tuple[str, list[str], int]]]:
    """For every module: (imported module, names, line) of each import of a splitnet module,
    those inside functions included."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        module = path.stem
        found = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    found.append((node.module, [a.name for a in node.names], node.lineno))
                elif node.level == 1:
                    found += [(a.name, [], node.lineno) for a in node.names]
                elif node.level == 0 and (node.module or "").startswith("splitnet."):
                    found.append((node.module.split(".")[1], [a.name for a in node.names], node.lineno))
            elif isinstance(node, ast.Import):
                found += [
                    (a.name.split(".")[1], [], node.lineno)
                    for a in node.names
                    if a.name.startswith("splitnet.")
                ]
        graph[module] = found
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = "open", path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node], _ = "done", path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_finder_sees_a_circle_and_a_clean_graph():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_scan_sees_imports_inside_functions():
    # the command line imports these only inside its commands
    assert {"_train", "_summary", "_peak"} <= {m for m, _, _ in intra_package_imports()["_cli"]}


def test_modules_import_each_other_without_a_circle():
    graph = {
        module: {m for m, _, _ in found if m != module} for module, found in intra_package_imports().items()
    }
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_module_takes_a_private_name_from_another():
    crossing = [
        f"{module}.py line {line}: {name} from {source}"
        for module, found in intra_package_imports().items()
        for source, names, line in found
        for name in names
        if name.startswith("_")
    ]
    assert not crossing, crossing
