"""Private scvi-tools imports appear only in ``mosaicvi/_compat.py`` (scvi-tools 1.4 and 1.5)."""

from __future__ import annotations

import ast
from pathlib import Path

import mosaicvi

PACKAGE = Path(mosaicvi.__file__).parent


def private_scvi_imports(path: Path) -> list[str]:
    """``scvi`` modules with a private (underscore) part that ``path`` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "scvi" and any(p.startswith("_") for p in parts[1:]):
                found.append(name)
    return found


def test_private_scvi_imports_only_in_compat():
    offenders = {
        str(path.relative_to(PACKAGE)): private_scvi_imports(path)
        for path in PACKAGE.rglob("*.py")
        if path.name != "_compat.py"
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert private_scvi_imports(PACKAGE / "_compat.py")  # the check sees them where they are


def test_the_check_catches_a_private_import(tmp_path):
    module = tmp_path / "example.py"
    module.write_text("from scvi.model._utils import parse_device_args\nimport scvi.data\n")
    assert private_scvi_imports(module) == [
        "scvi.model._utils",
        "scvi.model._utils.parse_device_args",
    ]
