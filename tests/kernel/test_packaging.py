"""The wheel a user installs ships every file of the web UI and the built-in scenarios
(not only what an editable install reads from the source tree), and builds without
setuptools' warnings about data folders it was not told of."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = {"webui/static": "p2pkit/webui/static", "webui/templates": "p2pkit/webui/templates",
        "simulator/scenarios": "p2pkit/simulator/scenarios"}


def test_the_wheel_ships_every_data_file_without_warnings(tmp_path: Path) -> None:
    env = {**os.environ, "P2PKIT_PURE_PYTHON": "1"}  # the compiled modules are not the point here
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert "absent from the `packages` configuration" not in result.stderr
    (wheel,) = tmp_path.glob("p2pkit-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"{target}/{path.relative_to(ROOT / source).as_posix()}"
                for source, target in DATA.items()
                for path in (ROOT / source).rglob("*") if path.is_file()}
    assert expected and expected <= shipped, sorted(expected - shipped)
    assert "p2pkit/py.typed" in shipped
