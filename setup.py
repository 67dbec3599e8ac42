"""Build p2pkit's hot protocol and simulator modules as C extensions with mypyc.

Everything else is in pyproject.toml. The modules below are plain, strictly typed Python;
mypyc compiles the same source (no second implementation), and the Python files stay
beside the extensions as the fallback. Set ``P2PKIT_PURE_PYTHON=1`` to install without
compiling; without a C compiler, or if mypyc refuses a module, the install falls back to
pure Python with a warning (``p2pkit.compiled.compiled_modules()`` says which ran).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup

# The per-datagram path of the simulator and of rudp (see docs/simulator.md, "Speed").
NATIVE_MODULES = (
    "p2pkit.demux",
    "p2pkit.plugins.rudp.bbr",
    "p2pkit.plugins.rudp.connection",
    "p2pkit.plugins.rudp.mux",
    "p2pkit.plugins.rudp.newreno",
    "p2pkit.plugins.rudp.packet",
    "p2pkit.plugins.rudp.ranges",
    "p2pkit.plugins.rudp.recovery",
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


def _source_file(module: str) -> Path:
    package, _, name = module.rpartition(".")
    while package not in PACKAGE_DIRS:  # the deepest mapped package holds it
        package, _, sub = package.rpartition(".")
        name = f"{sub}/{name}"
    return ROOT / PACKAGE_DIRS[package] / f"{name}.py"


def _remove_old_builds() -> None:
    """An editable install's extensions lie beside the sources and win over them on import:
    a build that compiles less (or nothing) must not leave an old one in the way."""
    for module in NATIVE_MODULES:
        source = _source_file(module)
        for built in source.parent.glob(f"{source.stem}.*.so"):
            built.unlink()
    for built in (ROOT / "p2pkit").glob("_native__mypyc.*.so"):
        built.unlink()


def _builds_in_place() -> bool:
    """An editable install or ``build_ext --inplace`` (not a wheel, which leaves the tree)."""
    return any(arg in sys.argv for arg in ("editable_wheel", "develop", "--inplace", "-i"))


def native_extensions() -> list[Extension]:
    if _builds_in_place():
        _remove_old_builds()
    if os.environ.get("P2PKIT_PURE_PYTHON"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("p2pkit: mypyc not available, installing pure Python", file=sys.stderr)
        return []
    tree = _installed_layout()
    paths = [str(tree.joinpath(*name.split(".")).with_suffix(".py")) for name in NATIVE_MODULES]
    here = Path.cwd()
    os.chdir(tree)  # mypy reads mypy.ini from, and resolves modules against, the tree
    try:
        extensions = mypycify(["--config-file", "mypy.ini", *paths], opt_level="3",
                              group_name="p2pkit._native", target_dir=str(ROOT / "build" / "native-c"))
    except SystemExit as exc:  # mypyc reports what it cannot compile by exiting
        print(f"p2pkit: mypyc failed ({exc}), installing pure Python", file=sys.stderr)
        return []
    finally:
        os.chdir(here)
    for extension in extensions:
        extension.optional = True  # no C compiler: the Python modules serve instead
    return extensions


setup(ext_modules=native_extensions())
