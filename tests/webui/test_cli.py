"""``p2pkit web`` as a user runs it: a real process, its printed URL, the access token."""

from __future__ import annotations

from pathlib import Path

import httpx

from .nodeproc import NodeProcess


def test_web_command_serves_on_loopback_without_token(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "a", stack=False)
    try:
        assert node.url.startswith("http://127.0.0.1:") and "token" not in node.url
        status = node.api("/api/node").json()
        assert len(status["id"]) == 64 and status["state"] == "running"
        assert "<title>p2pkit</title>" in node.api("/").text
    finally:
        assert node.stop() == 0


def test_web_command_off_loopback_requires_the_printed_token(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "b", "--host", "0.0.0.0", stack=False)
    try:
        assert "?token=" in node.url
        token = node.url.split("?token=", 1)[1]
        base = node.base
        assert httpx.get(base + "/api/node", timeout=10).status_code == 401
        assert httpx.get(base + "/", timeout=10).status_code == 401
        assert httpx.get(base + "/api/node", headers={"Authorization": f"Bearer {token}"},
                         timeout=10).status_code == 200
        with httpx.Client(timeout=10, follow_redirects=True) as browser_like:
            page = browser_like.get(node.url)  # the printed link: sets a cookie, shows the clean URL
            assert page.status_code == 200 and str(page.url) == base + "/"
            assert browser_like.get(base + "/api/node").status_code == 200
    finally:
        assert node.stop() == 0


def test_web_command_rejects_a_bad_port(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "p2pkit.cli", "web", "--http-port", "70000", "--port", "0",
         "--data-dir", str(tmp_path), "--repeater", "off"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "http-port" in result.stderr and "Traceback" not in result.stderr


def test_web_command_refuses_a_token_no_http_header_can_carry(tmp_path: Path) -> None:
    # `--token é` was taken: the URL's ?token= worked, an API client's Bearer never did
    import subprocess
    import sys

    config = tmp_path / "p2pkit.toml"
    config.write_text('[web]\ntoken = "two words"\n', encoding="utf-8")
    for flags in (["--token", "é", "--host", "0.0.0.0"], ["--config", str(config)]):
        result = subprocess.run(
            [sys.executable, "-m", "p2pkit.cli", "web", *flags, "--port", "0",
             "--data-dir", str(tmp_path), "--repeater", "off"],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "printable ASCII" in result.stderr and "Traceback" not in result.stderr
