"""The example in docs/architecture.md runs as written (an embedder's first lines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_embedding_example_runs_and_prints_the_node(capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = BLOCKS
    exec(compile(block, f"{DOC.name}[0]", "exec"), {"__name__": "__doc_example__"})
    node_id, *_ = capsys.readouterr().out.split()
    assert len(node_id) == 64 and int(node_id, 16) >= 0


class Nameless:
    """A plugin without a p2pkit_name."""


NAMELESS = Nameless()


def test_the_names_the_docs_give_plugins_are_the_names_they_go_by() -> None:
    # the docs said a plugin loaded by --plugin went by its module's last part or its
    # class's name; it goes by the spec that loaded it
    from p2pkit.plugin_manager import BUILTIN_PLUGINS, create_plugin_manager, plugin_name

    rows = dict(re.findall(r"^\| (.+?) \| (.+?) \|$", DOC.read_text(encoding="utf-8"), re.M))
    spec = f"{__name__}:NAMELESS"
    no_builtins = [plugin_name(m) for m in BUILTIN_PLUGINS]
    pm = create_plugin_manager([spec, Nameless()], no_builtins, entry_points=False)
    assert pm.get_plugin(spec) is NAMELESS
    assert rows["`--plugin` / `[node] plugins`, `mypkg.ping:plugin`"].startswith("`mypkg.ping:plugin`")
    assert pm.get_name(next(p for p in pm.get_plugins() if p is not NAMELESS)) == "Nameless"
    assert rows["an object given to `open_node(plugins=[...])`"].endswith("else its class's name")
    assert create_plugin_manager([], entry_points=False).get_plugin("store") is not None
    assert rows["a built-in, `p2pkit.plugins.store`"].startswith("`store`")
