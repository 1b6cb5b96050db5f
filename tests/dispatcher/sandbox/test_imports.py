"""The sandbox's modules import each other without a circle, counting every import: module-level, under
`if TYPE_CHECKING:` and inside functions alike (a guarded or delayed import hides a circle, it does not
remove it)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import dispatcher.sandbox

PACKAGE = "dispatcher.sandbox"
FOLDER = Path(dispatcher.sandbox.__file__).parent
MODULES = {path.stem for path in FOLDER.glob("*.py")}


def _stem(dotted: str) -> str | None:
    """The sandbox module a dotted name lies in ("__init__" for the package itself), None outside the sandbox."""
    if dotted == PACKAGE:
        return "__init__"
    if not dotted.startswith(f"{PACKAGE}."):
        return None
    stem = dotted[len(PACKAGE) + 1 :].split(".")[0]
    return stem if stem in MODULES else None


def _imported(node: ast.Import | ast.ImportFrom) -> set[str]:
    """The sandbox modules one import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        anchor = PACKAGE.rsplit(".", node.level - 1)[0] if node.level else None  # a relative import's package
        module = ".".join(part for part in (anchor, node.module) if part)
        # `from P import x` loads the module P.x when there is one, else takes a name P defines.
        names = [f"{module}.{alias.name}" if _stem(f"{module}.{alias.name}") else module for alias in node.names]
    return {stem for name in names if (stem := _stem(name)) is not None}


def import_graph() -> dict[str, set[str]]:
    """Each sandbox module and the sandbox modules it imports, wherever the import statement stands."""
    graph: dict[str, set[str]] = {}
    for stem in sorted(MODULES):
        tree = ast.parse((FOLDER / f"{stem}.py").read_text(encoding="utf-8"))
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _imported(node)
        graph[stem] = edges - {stem}
    return graph


def test_the_graph_sees_the_imports() -> None:
    graph = import_graph()
    assert {"app", "gateway", "graph", "twilio"} <= MODULES
    assert graph["__init__"] == {"app"}
    assert {"graph", "twilio", "gateway"} <= graph["app"]  # `from dispatcher.sandbox import graph, twilio`


def test_the_sandbox_modules_import_each_other_without_a_circle() -> None:
    graph = import_graph()
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        # The sorter lists a circle from each module to one importing it: reversed, it reads "a imports b ...".
        raise AssertionError(f"import circle: {' imports '.join(reversed(exc.args[1]))}") from None
    assert set(order) == MODULES
