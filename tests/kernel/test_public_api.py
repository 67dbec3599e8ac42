"""The public surface is what the docs say it is (httpx's exported-members test)."""

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, assert_type

import p2pkit
from p2pkit.capabilities import SharedContent

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


async def _an_embedding_user_s_code_is_typed(node: p2pkit.Node) -> None:
    """Never run: `make typecheck` checks it. An embedding user's code was all Any —
    ``content.no_such_field`` and ``first.title`` on a dict passed ``mypy --strict``."""
    content = await node.share("song.wav")
    assert_type(content, SharedContent)
    assert_type(content.rid, str)
    assert_type(content.duration, float | None)
    files = node.network_files()
    assert_type(files, Sequence[Mapping[str, Any]])
    assert_type(await node.search("song"), Sequence[Mapping[str, Any]])
    assert_type(await node.download(content.rid), Path)
