"""Which p2pkit modules run as C extensions compiled by mypyc (see setup.py).

The compiled modules are the same source as the ``.py`` files beside them. An install with
``P2PKIT_PURE_PYTHON=1`` (or without a C compiler) has only those files; running with
``P2PKIT_PURE_PYTHON=1`` set imports them instead of the extensions — for a debugger, a
line profiler, or the tests of the pure path. Benchmarks print :func:`compiled_modules`
so a figure says which of the two it measured.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec, PathFinder
from importlib.util import find_spec, spec_from_file_location
from pathlib import Path
from types import ModuleType

PURE_PYTHON_ENV = "P2PKIT_PURE_PYTHON"
_SUFFIXES = tuple(EXTENSION_SUFFIXES)


def env_flag(name: str) -> bool:
    """Environment variable ``name`` is set to something other than empty, 0, false or no
    (setup.py reads its switches the same way)."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def pure_python_requested() -> bool:
    return env_flag(PURE_PYTHON_ENV)


def compiled_modules() -> list[str]:
    """The p2pkit modules imported so far that are C extensions, sorted."""
    return sorted(
        name for name, module in list(sys.modules.items())
        if name.startswith("p2pkit.") and not name.endswith("__mypyc")
        and str(getattr(module, "__file__", None) or "").endswith(_SUFFIXES)
    )


def build_description() -> str:
    """What this install runs: "compiled (mypyc)" when its extensions are built and in use,
    else why not."""
    if pure_python_requested():
        return f"pure Python ({PURE_PYTHON_ENV} is set)"
    if find_spec("p2pkit._native__mypyc") is None:
        return "pure Python (not compiled at install)"
    return "compiled (mypyc)"


class SourceFirstFinder(MetaPathFinder):
    """Finds a p2pkit module's ``.py`` file where a compiled extension sits beside it."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if not fullname.startswith("p2pkit.") or path is None:
            return None
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(_SUFFIXES):
            return None
        source = Path(spec.origin).with_name(fullname.rpartition(".")[2] + ".py")
        return spec_from_file_location(fullname, source) if source.is_file() else None


def prefer_sources() -> None:
    """Import p2pkit's modules from source from now on (modules already imported stay)."""
    if not any(isinstance(finder, SourceFirstFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceFirstFinder())


if pure_python_requested():
    prefer_sources()
