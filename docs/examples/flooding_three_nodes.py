"""Three nodes in a line, A - B - C, in one process: share on A, find it on C.

    python -m docs.examples.flooding_three_nodes

Every node is a real node on 127.0.0.1 (real UDP, the real transport); C hears of A's
file only through B, because peer exchange is switched off to keep the line a line.
"""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path
from typing import Any

import trio

from p2pkit import NodeConfig, open_node

FAST = {"announce_interval": 1.0, "entry_expiry": 3.0, "peer_exchange": False}


def config(*bootstrap: Any) -> NodeConfig:
    return NodeConfig.from_mapping({
        "node": {"ephemeral": True, "port": 0, "host": "127.0.0.1",
                 "bootstrap": [f"127.0.0.1:{n.endpoint.local_address[1]}" for n in bootstrap]},
        "flooding": FAST,
    })


def tone(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:  # half a second of silence is a valid WAV file
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 4000)
    return path


async def wait_until(check: Any) -> None:
    with trio.fail_after(15):
        while not check():  # noqa: ASYNC110 - state spread over several nodes
            await trio.sleep(0.05)


async def main(workdir: Path) -> dict[str, Any]:
    async with open_node(config()) as a, open_node(config(a)) as b, open_node(config(b)) as c:
        manifest = await a.share(tone(workdir / "harbour.wav"), title="Harbour Bells",
                                 description="Recorded at noon")
        await wait_until(lambda: any(f["rid"] == manifest.rid for f in c.network_files()))
        listed = next(f for f in c.network_files() if f["rid"] == manifest.rid)
        print("C sees:", listed["title"], listed["size"], "bytes, from", listed["providers"])

        found = await c.search("bells")  # flooded query, answers routed back through B
        print("C searched 'bells':", [f["title"] for f in found])

        await a.unshare(manifest.rid)
        await wait_until(lambda: not c.network_files())
        print("A unshared it; C's list is empty again")
        return {"listed": listed, "found": found, "a": a.id}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(main, Path(tmp))
