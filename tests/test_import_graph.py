"""The packages' import graph: the seams issue 18 cut stay cut.

Read from the source with ``ast`` (every import, including those inside
functions), per package of ``tongyeok_server``: ``api`` is the wire edge and
may use the packages below it; ``session`` and the engines never import
``api``; capabilities (``store``, ``synthesis``) and ``session`` do not import
each other both ways.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import tongyeok_server

ROOT = Path(tongyeok_server.__file__).parent


def package_graph() -> dict[str, set[str]]:
    """Package -> the packages its modules import (top-level modules count as packages of their own)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        package = relative.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
                if node.module == "tongyeok_server":
                    names = [f"tongyeok_server.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "tongyeok_server" and len(parts) > 1 and parts[1] != package:
                    graph[package].add(parts[1])
    return graph


def test_no_two_packages_import_each_other_across_the_seams() -> None:
    graph = package_graph()
    for a, b in [("api", "store"), ("api", "synthesis"), ("session", "synthesis"), ("session", "store")]:
        assert not (b in graph[a] and a in graph[b]), f"{a} and {b} import each other"


def test_the_session_layer_and_the_engines_do_not_know_the_wire_edge() -> None:
    graph = package_graph()
    for package in ("session", "recognition", "translation", "synthesis", "store", "observability", "engines"):
        assert "api" not in graph[package], f"{package} imports api"
        assert "app" not in graph[package] and "main" not in graph[package], f"{package} imports the root"


def test_only_the_composition_root_sees_every_setting() -> None:
    # Components are handed their own group (settings.XSettings); the whole Settings is the root's.
    readers = {
        path.relative_to(ROOT).as_posix()
        for path in ROOT.rglob("*.py")
        if any(
            isinstance(node, ast.ImportFrom)
            and node.module in ("tongyeok_server.settings", "tongyeok_server.settings.root")
            and any(alias.name == "Settings" for alias in node.names)
            for node in ast.walk(ast.parse(path.read_text()))
        )
    }
    assert readers <= {"app.py", "main.py", "supervisor.py", "settings/cli.py", "settings/__init__.py"}, readers
