"""Build p2pkit's hot protocol and simulator modules as C extensions with mypyc.

Everything else is in pyproject.toml. The modules below are plain, strictly typed Python;
mypyc compiles the same source (no second implementation), and the Python files stay
beside the extensions as the fallback. Set ``P2PKIT_PURE_PYTHON=1`` to install without
compiling; without a C compiler, or if mypyc refuses a module, the install falls back to
pure Python with a warning (``p2pkit.compiled.compiled_modules()`` says which ran) —
unless ``P2PKIT_REQUIRE_COMPILED=1`` (the Makefile's, where ``cc`` exists) makes that an
error.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError

# The per-datagram path of the simulator and of rudp (see docs/simulator.md, "Speed").
NATIVE_MODULES = (
    "p2pkit.demux",
    "p2pkit.plugins.rudp.bbr",
    "p2pkit.plugins.rudp.connection",
    "p2pkit.plugins.rudp.driver",
    "p2pkit.plugins.rudp.mux",
    "p2pkit.plugins.rudp.newreno",
    "p2pkit.plugins.rudp.packet",
    "p2pkit.plugins.rudp.ranges",
    "p2pkit.plugins.rudp.recovery",
    "p2pkit.plugins.rudp.shaper",
    "p2pkit.plugins.rudp.uplink",
    "p2pkit.plugins.rudp.rtt",
    "p2pkit.plugins.rudp.stats",
    "p2pkit.plugins.rudp.streams",
    "p2pkit.simulator._direction",
    "p2pkit.simulator._endpoint",
    "p2pkit.simulator._network",
)

# The installed layout: plugins, simulator and webui are packages inside p2pkit.
PACKAGE_DIRS = {"p2pkit": "p2pkit", "p2pkit.plugins": "plugins",
                "p2pkit.simulator": "simulator", "p2pkit.webui": "webui"}
ROOT = Path(__file__).resolve().parent
TREE = ROOT / "build" / "native-src"


def _installed_layout() -> Path:
    """A tree of symlinks in which mypy sees ``plugins/`` as ``p2pkit.plugins`` (and so on)."""
    shutil.rmtree(TREE, ignore_errors=True)
    (TREE / "p2pkit").mkdir(parents=True)
    for package, directory in PACKAGE_DIRS.items():
        target = TREE.joinpath(*package.split("."))
        if package == "p2pkit":
            for entry in (ROOT / directory).iterdir():
                (target / entry.name).symlink_to(entry)
        else:
            target.symlink_to(ROOT / directory)
    # pip builds in an environment of pyproject's build requirements only: the typed
    # dependencies the compiled modules' types need are among them, the rest are Any.
    (TREE / "mypy.ini").write_text(
        "[mypy]\npython_version = 3.11\nignore_missing_imports = True\n\n"
        "[mypy-p2pkit.hookspecs]\ndisable_error_code = empty-body\n"
    )
    return TREE


def _flag(name: str) -> bool:
    # as p2pkit.compiled.env_flag (not importable here: p2pkit's dependencies are not)
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


# P2PKIT_REQUIRE_COMPILED=1 (the Makefile sets it where there is a C compiler): a build
# that cannot compile is an error instead of a quiet pure-Python install.
REQUIRED = _flag("P2PKIT_REQUIRE_COMPILED")


def _fall_back(reason: str) -> list[Extension]:
    if REQUIRED:
        raise SystemExit(f"p2pkit: {reason}, and P2PKIT_REQUIRE_COMPILED is set")
    print(f"p2pkit: {reason}, installing pure Python", file=sys.stderr)
    return []


def _remove_old_builds() -> None:
    """An editable install's extensions lie beside the sources and win over them on import:
    no build may leave an old one in the way, of a module compiled now or not."""
    for directory in PACKAGE_DIRS.values():
        for built in (ROOT / directory).rglob("*.so"):
            built.unlink()


def _builds_in_place() -> bool:
    """An editable install or ``build_ext --inplace`` (not a wheel, which leaves the tree)."""
    return any(arg in sys.argv for arg in ("editable_wheel", "develop", "--inplace", "-i"))


def _builds() -> bool:
    """Whether this setup.py command compiles (metadata commands need no mypyc run)."""
    commands = ("build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install")
    return any(arg in commands for arg in sys.argv[1:])


class BuildNative(build_ext):
    """The shared library first: every module's stub imports it, so if it cannot be built
    no stub may be installed either (p2pkit would not import)."""

    def build_extensions(self) -> None:
        shared = [e for e in self.extensions if e.name.endswith("__mypyc")]
        try:
            for extension in shared:
                self.build_extension(extension)
            for extension in self.extensions:
                if extension not in shared:
                    self.build_extension(extension)
        except (BaseError, CCompilerError, OSError) as exc:  # no compiler, or it refused
            _fall_back(f"compiling failed ({exc})")
            self.extensions = []  # nothing to copy beside the sources


def native_extensions() -> list[Extension]:
    if _builds_in_place():
        _remove_old_builds()
    if _flag("P2PKIT_PURE_PYTHON") or not _builds():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return _fall_back("mypyc is not available")
    tree = _installed_layout()
    paths = [str(tree.joinpath(*name.split(".")).with_suffix(".py")) for name in NATIVE_MODULES]
    here = Path.cwd()
    os.chdir(tree)  # mypy reads mypy.ini from, and resolves modules against, the tree
    try:
        return mypycify(["--config-file", "mypy.ini", *paths], opt_level="3",
                        group_name="p2pkit._native", target_dir=str(ROOT / "build" / "native-c"))
    except SystemExit as exc:  # mypyc reports what it cannot compile by exiting
        return _fall_back(f"mypyc failed ({exc})")
    finally:
        os.chdir(here)


setup(ext_modules=native_extensions(), cmdclass={"build_ext": BuildNative})
