"""``make demo``: three nodes with their web UIs that know each other, sharing media the
demo makes itself (a short video and an image with OpenCV, a tone with ``wave``).

    python -m p2pkit.webui.demo                 # UIs on http://127.0.0.1:3000..3002
    python -m p2pkit.webui.demo --check         # start, verify every node sees every file, stop

Each node is its own ``p2pkit web`` process (one process = one node + UI); node B and C
bootstrap from A, C also from B. Ctrl-C stops them all.
"""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import cv2
import httpx
import numpy as np

NAMES = ("A", "B", "C")
STACK = ["--plugin", "p2pkit.plugins.rudp", "--plugin", "p2pkit.plugins.flooding",
         "--plugin", "p2pkit.plugins.swarm", "--set", "node.discovery=flooding"]


# ---------------------------------------------------------------------------- media


def make_video(folder: Path, seconds: float = 4.0, fps: int = 24, size: tuple[int, int] = (480, 270)) -> Path:
    """A bouncing ball with a clock, in the first container/codec OpenCV can write here."""
    width, height = size
    for fourcc, ext in (("VP80", ".webm"), ("avc1", ".mp4"), ("mp4v", ".mp4"), ("MJPG", ".avi")):
        path = folder / f"bouncing-ball{ext}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
        if not writer.isOpened():
            continue
        frames = int(seconds * fps)
        for i in range(frames):
            t = i / fps
            frame = np.zeros((height, width, 3), dtype=np.uint8)
            frame[:] = (40 + 30 * math.sin(t), 30, 60 + 40 * math.cos(t / 2))
            x = int((width - 60) * abs(math.sin(t * 1.3))) + 30
            y = int((height - 60) * abs(math.cos(t * 0.9))) + 30
            cv2.circle(frame, (x, y), 26, (60, 180, 255), -1)
            cv2.putText(frame, f"p2pkit demo  {t:4.1f}s", (14, height - 16), cv2.FONT_HERSHEY_SIMPLEX,
                        0.7, (235, 235, 235), 2, cv2.LINE_AA)
            writer.write(frame)
        writer.release()
        if path.exists() and path.stat().st_size > 0:
            return path
    raise RuntimeError("OpenCV cannot write any video format on this machine")


def make_image(folder: Path, size: tuple[int, int] = (960, 540)) -> Path:
    width, height = size
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    image = np.concatenate([255 * (1 - y) * np.ones_like(x), 120 + 100 * x * np.ones_like(y),
                            255 * x * y], axis=2).astype(np.uint8)
    for i in range(7):
        cv2.circle(image, (120 + i * 120, height // 2 + int(80 * math.sin(i))), 40 + 6 * i,
                   (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(image, "shared over p2pkit", (40, 80), cv2.FONT_HERSHEY_DUPLEX, 1.6, (20, 20, 40), 3, cv2.LINE_AA)
    path = folder / "gradient-circles.png"
    cv2.imwrite(str(path), image)
    return path


def make_tone(folder: Path, seconds: float = 3.0, rate: int = 22050) -> Path:
    """A4 and E5 with a gentle fade, 16-bit mono WAV."""
    path = folder / "a440-chord.wav"
    frames = bytearray()
    n = int(seconds * rate)
    for i in range(n):
        t = i / rate
        envelope = min(1.0, t * 8, (seconds - t) * 4)
        sample = 0.35 * math.sin(2 * math.pi * 440 * t) + 0.25 * math.sin(2 * math.pi * 659.25 * t)
        frames += struct.pack("<h", int(32767 * envelope * sample))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


# ---------------------------------------------------------------------------- nodes


class DemoNode:
    def __init__(self, name: str, folder: Path, http_port: int, udp_port: int,
                 bootstrap: list[str], share: Path) -> None:
        self.name = name
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "node.log"
        args = [sys.executable, "-m", "p2pkit.cli", "web", "--http-port", str(http_port),
                "--port", str(udp_port), "--udp-host", "127.0.0.1", "--data-dir", str(folder / "data"),
                "--repeater", "off", "--share", str(share), *STACK]
        for address in bootstrap:
            args += ["--bootstrap", address]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.url = ""
        self.udp_port = 0

    def wait_ready(self, limit: float = 60.0) -> str:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith("web UI: "):
                    self.url = line.split(": ", 1)[1].strip()
                    return self.url
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"node {self.name} did not start; see {self.log}:\n"
                           + self.log.read_text(errors="replace")[-2000:])

    def api(self, path: str) -> dict:  # type: ignore[type-arg]
        return httpx.get(self.url.rstrip("/") + path, timeout=5).json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start_nodes(root: Path, http_port: int, udp_port: int) -> list[DemoNode]:
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    files = [make_video(media), make_image(media), make_tone(media)]
    nodes: list[DemoNode] = []
    try:
        for i, name in enumerate(NAMES):
            bootstrap = [f"127.0.0.1:{n.udp_port}" for n in nodes]
            node = DemoNode(name, root / f"node-{name.lower()}", http_port + i if http_port else 0,
                            udp_port + i if udp_port else 0, bootstrap, files[i])
            nodes.append(node)
            node.wait_ready()
            node.udp_port = int(node.api("/api/node")["udp"].rsplit(":", 1)[1])
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


def all_see_everything(nodes: list[DemoNode], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if all(len(n.api("/api/network/files")["files"]) >= len(nodes) for n in nodes):
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="p2pkit-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--http-port", type=int, default=3000, help="first HTTP port (0 = any free)")
    parser.add_argument("--udp-port", type=int, default=7701, help="first UDP port (0 = any free)")
    parser.add_argument("--dir", type=Path, help="keep the demo's files here (default: a temporary directory)")
    parser.add_argument("--check", action="store_true", help="verify that every node sees every file, then stop")
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="p2pkit-demo-"))
    print(f"p2pkit demo in {root}: making sample media and starting three nodes…", flush=True)
    nodes = start_nodes(root, args.http_port, args.udp_port)
    try:
        for node in nodes:
            print(f"  node {node.name}: {node.url}   (log: {node.log})", flush=True)
        if args.check:
            ok = all_see_everything(nodes, 60.0)
            print("demo check: " + ("every node sees all three files" if ok else "FAILED"), flush=True)
            return 0 if ok else 1
        print("Open the URLs above; each node shares one file and can download the others. Ctrl-C stops.",
              flush=True)
        while all(n.proc.poll() is None for n in nodes):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for node in nodes:
            node.stop()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
