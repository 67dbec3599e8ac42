"""The compiled modules (setup.py, mypyc) and the switch back to their Python source."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import p2pkit.simulator._network
import pytest

from p2pkit.compiled import (
    PURE_PYTHON_ENV,
    SourceFirstFinder,
    build_description,
    compiled_modules,
    env_flag,
    pure_python_requested,
)

from ..conftest import ROOT, stale_extensions

PROBE = """
import json, p2pkit.plugins.rudp.connection as c, p2pkit.simulator._network as n
from p2pkit.compiled import compiled_modules
print(json.dumps([c.__file__, n.__file__, compiled_modules()]))
"""


def _probe(pure: bool) -> tuple[str, str, list[str]]:
    """(connection's file, _network's file, compiled modules) in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k != PURE_PYTHON_ENV}
    if pure:
        env[PURE_PYTHON_ENV] = "1"
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, env=env, timeout=60)
    connection, network, compiled = json.loads(run.stdout)
    return str(connection), str(network), list(compiled)


def test_compiled_modules_are_those_loaded_from_an_extension() -> None:
    module_file = p2pkit.simulator._network.__file__
    assert module_file is not None
    listed = "p2pkit.simulator._network" in compiled_modules()
    assert listed == module_file.endswith(tuple(EXTENSION_SUFFIXES))


def test_pure_python_switch_imports_the_sources() -> None:
    connection, network, compiled = _probe(pure=True)
    assert connection.endswith("connection.py")
    assert network.endswith("_network.py")
    assert compiled == []


def test_without_the_switch_an_extension_beside_a_source_wins() -> None:
    connection, _network, compiled = _probe(pure=False)
    built = list(Path(connection).parent.glob("connection.*.so"))
    assert connection.endswith(".so") == bool(built)
    assert ("p2pkit.plugins.rudp.connection" in compiled) == bool(built)


def test_the_build_description_says_whether_compiled_modules_run() -> None:
    built = any(Path(p2pkit.__file__).parent.glob("_native__mypyc.*.so"))
    if pure_python_requested():
        assert build_description().startswith("pure Python (P2PKIT_PURE_PYTHON")
    else:
        assert build_description() == ("compiled (mypyc)" if built else
                                        "pure Python (not compiled at install)")
    assert bool(compiled_modules()) == (built and not pure_python_requested())


def _native_modules() -> list[str]:
    """setup.py's NATIVE_MODULES, read without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NATIVE_MODULES":
            return list(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no NATIVE_MODULES")


@pytest.mark.skipif(not env_flag("P2PKIT_REQUIRE_COMPILED") or pure_python_requested(),
                    reason="compiled modules are optional outside `make test` on a machine with cc")
def test_a_required_build_runs_every_listed_module_compiled() -> None:
    names = _native_modules()
    for name in names:
        importlib.import_module(name)
    assert [n for n in names if n not in compiled_modules()] == []


def test_source_first_finder_leaves_other_packages_alone() -> None:
    finder = SourceFirstFinder()
    assert finder.find_spec("json.decoder", None) is None
    assert finder.find_spec("p2pkit.nonexistent", [str(Path(p2pkit.__file__).parent)]) is None


def test_an_extension_older_than_its_source_is_reported(tmp_path: Path) -> None:
    package = tmp_path / "plugins" / "rudp"
    package.mkdir(parents=True)
    for name, (so_time, py_time) in {"fresh": (200, 100), "stale": (100, 200)}.items():
        built = package / f"{name}.cpython-311-x86_64-linux-gnu.so"
        source = package / f"{name}.py"
        built.write_bytes(b"")
        source.write_text("")
        os.utime(built, (so_time, so_time))
        os.utime(source, (py_time, py_time))
    assert stale_extensions(tmp_path) == ["plugins/rudp/stale.py"]
