"""The code's shape, read from its syntax trees: imports live at the top of modules (so the
import graph that lint-imports checks is the whole graph), and the Kargo language is pure Python."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kargo", "projects", "freight", "stages", "kargo_ui")
# The import-linter contract for kargo/ forbids the same (pyproject.toml).
NOT_IN_KARGO = {"django", "channels", "celery", "daphne"}


def source_files(*packages: str) -> list[Path]:
    return sorted(
        path
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.relative_to(ROOT).parts
    )


def is_app_config(node: ast.ClassDef) -> bool:
    return any(
        (isinstance(base, ast.Name) and base.id == "AppConfig")
        or (isinstance(base, ast.Attribute) and base.attr == "AppConfig")
        for base in node.bases
    )


def nested_imports(source: str) -> list[int]:
    """Line numbers of import statements inside a function or method, except inside the
    `ready()` method of an AppConfig, where Django wants an app's late imports (its tasks)."""
    tree = ast.parse(source)
    ready_methods = {
        id(item)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and is_app_config(node)
        for item in node.body
        if isinstance(item, ast.FunctionDef) and item.name == "ready"
    }
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom) and in_function:
                found.append(child.lineno)
            elif id(child) in ready_methods:
                continue  # the one allowed place
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, in_function=True)
            else:
                visit(child, in_function)

    visit(tree, in_function=False)
    return found


def imported_modules(source: str) -> set[str]:
    """The top-level package of every absolute import, wherever it stands in the module."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_scan_covers_every_layer():
    files = source_files(*PACKAGES)
    for package in PACKAGES:
        assert any(path.is_relative_to(ROOT / package) for path in files), package
    assert not any("migrations" in path.parts for path in files)


def test_no_module_imports_inside_a_function():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in source_files(*PACKAGES)
        for line in nested_imports(path.read_text())
    ]
    assert offenders == [], "move these imports to the top of their module"


@pytest.mark.parametrize(
    "snippet",
    [
        "def f():\n    import os\n",
        "def f():\n    from os import path\n",
        "async def f():\n    import os\n",
        "class Service:\n    def run(self):\n        import os\n",
        "def outer():\n    def inner():\n        import os\n",
        "def f():\n    if True:\n        import os\n",
        "class Helper:\n    def ready(self):\n        import os\n",  # not an AppConfig
        "def ready():\n    import os\n",  # a function named ready, not AppConfig.ready
        "class C(AppConfig):\n    def other(self):\n        import os\n",
        "class C(AppConfig):\n    class Inner:\n        def ready(self):\n            import os\n",
    ],
)
def test_the_scanner_finds_an_import_inside_a_function(snippet):
    assert nested_imports(snippet) != []


@pytest.mark.parametrize(
    "snippet",
    [
        "import os\nfrom pathlib import Path\n",
        "try:\n    import yaml\nexcept ImportError:\n    yaml = None\n",
        "class C:\n    import os\n",
        "class C(AppConfig):\n    def ready(self):\n        from . import tasks  # noqa\n",
        "class C(apps.AppConfig):\n    def ready(self) -> None:\n        import x.tasks\n",
    ],
)
def test_the_scanner_accepts_module_level_imports_and_app_config_ready(snippet):
    assert nested_imports(snippet) == []


def test_the_kargo_language_imports_no_django():
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path.read_text()) & NOT_IN_KARGO)
        for path in source_files("kargo")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_import_scan_sees_django_wherever_it_is_imported():
    source = "import json\ndef f():\n    from django.db import models\nimport celery.app\n"
    assert imported_modules(source) & NOT_IN_KARGO == {"django", "celery"}
