"""The layers, guarded: the domain never imports the workers, workers never import the API, and provider
adapters know no web server. Imports are read from the source (function-level ones too), not run."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB = ("fastapi", "starlette", "uvicorn", "dispatcher.api")


def imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        # The API and the CLI publish tasks by name (`dispatcher.contracts`); they never load worker code.
        ("dispatcher", ("workers",)),
        ("beat_schedule", ("workers", *WEB)),
        # The domain knows no web server: the API calls it, never the other way round.
        *((f"dispatcher/{room}", WEB) for room in ("audience", "campaigns", "content", "db", "tracking")),
        ("workers", WEB),
        ("workers/providers", (*WEB, "dispatcher.db", "sqlalchemy", "celery")),
    ],
)
def test_layers(folder: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(folder, forbidden) == []


def test_the_guard_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from workers import tasks\n")
    assert list(imports(module)) == ["workers"]
