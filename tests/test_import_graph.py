"""The package's modules import each other without cycles -- counting imports inside functions too, since
a lazy import that closes a cycle still ties two modules together (a reader must hold both in mind, and
a refactor that hoists it breaks the import)."""
import ast
import os

import pytest

PACKAGE_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mx_dcn")


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(PACKAGE_ROOT))[:-3].split(os.sep)
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def _modules():
    found = {}
    for base, _, files in os.walk(PACKAGE_ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(base, f)
                found[_module_name(path)] = path
    return found


def import_graph():
    """module -> set of mx_dcn modules it imports (every import statement, at any depth), ancestor
    packages left out."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        is_package = path.endswith("__init__.py")
        package = name if is_package else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from pkg import sub` imports the submodule pkg.sub when there is one
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            else:
                continue
            # A module's ancestor packages are imported before it anyway: an edge to one adds nothing
            # (`from . import _C`, `from .. import __version__`).
            edges.update(t for t in targets if t in modules and not (name + ".").startswith(t + "."))
        graph[name] = edges
    return graph


def find_cycle(graph):
    """One cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "mx_dcn.ops" in graph["mx_dcn.backends.cpu"]                # `from .. import ops` inside a method
    assert "mx_dcn.cli.args" in graph["mx_dcn.bench"]                  # absolute, inside main()
    assert "mx_dcn.backends.ascendc.backend" in graph["mx_dcn.backends.ascendc"]


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ({"a": {"b"}, "b": set()}, None),
])
def test_find_cycle_finds_cycles(graph, cycle):
    assert find_cycle(graph) == cycle
