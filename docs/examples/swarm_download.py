"""Share a file on one node and download it on two others, from both at once.

    python -m docs.examples.swarm_download

Three ephemeral nodes on 127.0.0.1 (real UDP, rudp sessions, temporary stores): ``seed``
shares a generated WAV, ``a`` and ``b`` download it at the same time (they also trade
pieces with each other), and the SHA-256 of every copy is checked.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
import wave
from pathlib import Path

import trio

from p2pkit import GenericEvent, NodeConfig, open_node


def config(*bootstrap: int) -> NodeConfig:
    return NodeConfig.from_mapping({"node": {
        "ephemeral": True, "host": "127.0.0.1", "port": 0,
        "bootstrap": [f"127.0.0.1:{port}" for port in bootstrap],
    }})


def make_wav(path: Path, seconds: float = 20) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(random.Random(7).randbytes(int(seconds * 22050) * 2))
    return path


async def main(workdir: Path) -> dict[str, str]:
    media = make_wav(workdir / "noise.wav")
    async with open_node(config()) as seed:
        port = seed.endpoint.local_address[1]
        manifest = await seed.share(media, title="Noise", description="20 s of it")
        print("shared", manifest.rid, manifest.size, "bytes in", manifest.num_pieces, "pieces")
        async with open_node(config(port)) as a, open_node(config(port)) as b:
            digests: dict[str, str] = {}

            async def fetch(name: str, node: object) -> None:
                def progress(done: int, total: int) -> None:
                    print(f"  {name}: {done}/{total} bytes")

                path = await node.download(manifest.rid, workdir / f"{name}.wav",  # type: ignore[attr-defined]
                                           progress=progress)
                digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()

            async def watch() -> None:  # the same progress, as events (what the web UI sees)
                async with a.events.subscribe() as events:
                    async for event in events:
                        if isinstance(event, GenericEvent) and event.kind == "download.complete":
                            print("  a finished; bytes per peer:", event.data["from"])
                            return

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch)
                    nursery.start_soon(fetch, "a", a)
                    nursery.start_soon(fetch, "b", b)
    digests["original"] = hashlib.sha256(media.read_bytes()).hexdigest()
    print("sha256 equal:", len(set(digests.values())) == 1)
    return digests


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(main, Path(tmp))
