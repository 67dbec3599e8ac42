"""The public surface is what the docs say it is (httpx's exported-members test)."""

import tomllib
from pathlib import Path

import p2pkit

ROOT = Path(__file__).resolve().parents[2]


def test_exports_exist_and_are_listed() -> None:
    for name in p2pkit.__all__:
        assert hasattr(p2pkit, name), name
    documented = (ROOT / "docs" / "architecture.md").read_text()
    for name in ("open_node", "NodeConfig", "hookimpl", "Field", "MessageProtocol"):
        assert name in p2pkit.__all__
        assert f"`{name}" in documented, f"{name} is not documented in docs/architecture.md"


def test_every_package_directory_is_packaged() -> None:
    """A non-editable install must contain every package under the mapped directories."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for dotted, directory in setuptools["package-dir"].items():
        base = ROOT / directory
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join([dotted, *rel.parts]) if rel.parts else dotted)
    assert found <= listed, f"missing from pyproject packages: {sorted(found - listed)}"
