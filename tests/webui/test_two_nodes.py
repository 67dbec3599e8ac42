"""Two real nodes (rudp over loopback UDP, flooding, swarm, store) with their web UIs in one
trio run: what one shares through the API the other sees, downloads byte-identical, and
loses when it is removed. Every wait is bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from p2pkit.webui import WebConfig, WebUI

from p2pkit.node import open_node

from .conftest import multipart, node_config, png_bytes

PLUGINS = ["p2pkit.plugins.rudp", "p2pkit.plugins.flooding", "p2pkit.plugins.swarm"]


@asynccontextmanager
async def node_with_ui(*bootstrap: str) -> AsyncIterator[Any]:
    async with open_node(node_config(bootstrap=list(bootstrap)), plugins=PLUGINS) as node:
        ui = WebUI(node, WebConfig(http_port=0))
        await node.nursery.start(ui.run_background)
        yield ui


async def poll_json(client: Any, path: str, predicate: Any, limit: float = 20.0) -> Any:
    with trio.fail_after(limit):
        while True:
            data = await (await client.get(path)).get_json()
            if predicate(data):
                return data
            await trio.sleep(0.1)


async def test_share_on_a_download_on_b_remove_on_a() -> None:
    async with node_with_ui() as a:
        port = a.node.endpoint.local_address[1]
        async with node_with_ui(f"127.0.0.1:{port}") as b:
            ca, cb = a.app.test_client(), b.app.test_client()
            await poll_json(cb, "/api/peers", lambda d: any(p["id"] == a.node.id and p["online"] for p in d["peers"]))
            content = png_bytes(640, 480, seed=3)  # ~900 KiB of noise: several pieces
            body, headers = multipart({"title": "Noise", "description": "random pixels"}, "noise.png", content)
            item = await (await ca.post("/api/files", data=body, headers=headers)).get_json()

            files = await poll_json(cb, "/api/network/files",
                                    lambda d: any(f["rid"] == item["rid"] for f in d["files"]))
            entry = next(f for f in files["files"] if f["rid"] == item["rid"])
            assert entry["providers"] == 1 and entry["category"] == "image" and entry["size"] == len(content)
            found = await (await cb.get("/api/search?q=noise")).get_json()
            assert [r["rid"] for r in found["results"]] == [item["rid"]]

            b.node.store.set_storage_limit(len(content) - 1)  # too small: said at once
            full = await cb.post("/api/downloads", json={"rid": item["rid"]})
            assert full.status_code == 507 and "cannot fit" in (await full.get_json())["message"]
            b.node.store.set_storage_limit(None)

            # with its only provider switched off, a download says why it does not move (it
            # sat at "0 peers" with no hint)
            await cb.put(f"/api/peers/{a.node.id}/toggle", json={"enabled": False})
            stuck = await (await cb.post("/api/downloads", json={"rid": item["rid"]})).get_json()
            stuck = await poll_json(cb, f"/api/downloads/{stuck['id']}",
                                    lambda d: "1 peer switched off" in d["waiting"])
            assert (await cb.delete(f"/api/downloads/{stuck['id']}")).status_code == 200
            await cb.put(f"/api/peers/{a.node.id}/toggle", json={"enabled": True})

            # a download can be cancelled (a slow sender keeps it running meanwhile)
            await ca.put("/api/settings", json={"upload_limit_kbps": 16})
            slow = await (await cb.post("/api/downloads", json={"rid": item["rid"]})).get_json()
            await poll_json(cb, f"/api/downloads/{slow['id']}", lambda d: d["state"] == "running")
            cancelled = await cb.delete(f"/api/downloads/{slow['id']}")
            assert cancelled.status_code == 200 and (await cancelled.get_json())["state"] == "cancelled"
            again = await cb.delete(f"/api/downloads/{slow['id']}")
            assert again.status_code == 409
            # begun here, not whole: the detail view offered no download ("on this node")
            manifest = a.node.store.manifest(item["rid"])
            b.node.store.begin_download(manifest)
            assert b.node.store.write_piece(item["rid"], 0, a.node.store.read_piece(item["rid"], 0))
            partial = await (await cb.get(f"/api/videos/{item['rid']}")).get_json()
            assert partial["local"] is False and partial["progress"] < 1 and partial["providers"] == 1
            await ca.put("/api/settings", json={"upload_limit_kbps": 0})

            dl = await (await cb.post("/api/downloads", json={"rid": item["rid"]})).get_json()
            dl = await poll_json(cb, f"/api/downloads/{dl['id']}", lambda d: d["state"] in ("completed", "failed"), 60)
            assert dl["state"] == "completed", dl
            with trio.fail_after(10):
                saved = await cb.get(dl["file_url"])
            assert await saved.get_data() == content
            assert "noise.png" in saved.headers["Content-Disposition"]

            stats = await (await cb.get("/api/peers/stats")).get_json()
            assert stats["online"] == 1 and stats["bytes_received"] > len(content) - 256 * 1024  # (one piece was here)
            toggled = await (await cb.put(f"/api/peers/{a.node.id}/toggle", json={})).get_json()
            assert toggled["enabled"] is False and b.node.peers.get(a.node.id).enabled is False

            assert (await ca.delete(f"/api/files/{item['rid']}")).status_code == 200
            await poll_json(cb, "/api/network/files",
                            lambda d: all(f["rid"] != item["rid"] or f["providers"] == 0 for f in d["files"]))


async def test_a_peer_switched_off_stays_off_across_a_restart(tmp_path: Any) -> None:
    """The toggle lived in memory: after a restart the peer the person had switched off
    was used again, and was not even listed until it connected."""
    async with node_with_ui() as a:
        a_port = a.node.endpoint.local_address[1]
        config = {"bootstrap": [f"127.0.0.1:{a_port}"], "ephemeral": False,
                  "data_dir": str(tmp_path / "b"), "repeater": "off"}
        async with open_node(node_config(**config), plugins=PLUGINS) as node:
            b = WebUI(node, WebConfig(http_port=0))
            await node.nursery.start(b.run_background)
            cb = b.app.test_client()
            await poll_json(cb, "/api/peers", lambda d: any(p["id"] == a.node.id and p["online"] for p in d["peers"]))
            await cb.put(f"/api/peers/{a.node.id}/toggle", json={"enabled": False})
        async with open_node(node_config(**{**config, "bootstrap": []}), plugins=PLUGINS) as node:
            b = WebUI(node, WebConfig(http_port=0))
            await node.nursery.start(b.run_background)
            cb = b.app.test_client()
            # listed at once, switched off (online or not: the node dials the peers it
            # remembers, flooding.peers)
            (row,) = (await (await cb.get("/api/peers")).get_json())["peers"]
            assert row["id"] == a.node.id and row["enabled"] is False
            assert node.peers is not None
            await node.peers.connect(("127.0.0.1", a_port))
            with trio.fail_after(10):
                while (peer := node.peers.get(a.node.id)) is None:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            await poll_json(cb, "/api/peers", lambda d: d["peers"][0]["online"])
            assert peer.enabled is False
            on = await (await cb.put(f"/api/peers/{a.node.id}/toggle", json={"enabled": True})).get_json()
            assert on["enabled"] is True
        async with open_node(node_config(**{**config, "bootstrap": []}), plugins=PLUGINS) as node:
            b = WebUI(node, WebConfig(http_port=0))
            await node.nursery.start(b.run_background)
            rows = (await (await b.app.test_client().get("/api/peers")).get_json())["peers"]
            assert all(row["enabled"] for row in rows)  # switched on again: nothing kept off


async def test_a_peer_that_left_keeps_the_byte_counts_of_its_last_session() -> None:
    # an offline peer's row said 0 B sent and received, whatever the session had carried
    async with node_with_ui() as a:
        ca = a.app.test_client()
        port = a.node.endpoint.local_address[1]
        async with node_with_ui(f"127.0.0.1:{port}") as b:
            online = await poll_json(ca, "/api/peers", lambda d: any(p["id"] == b.node.id and p["online"]
                                                                    and p["bytes_received"] > 0 for p in d["peers"]))
        row = next(p for p in online["peers"] if p["id"] == b.node.id)
        gone = await poll_json(ca, "/api/peers", lambda d: not d["peers"][0]["online"])
        (left,) = gone["peers"]
        assert left["id"] == b.node.id and left["reason"]
        assert left["bytes_sent"] >= row["bytes_sent"] > 0
        assert left["bytes_received"] >= row["bytes_received"] > 0
        assert left["up_rate"] == left["down_rate"] == 0.0 and left["rtt_ms"] is None


async def test_a_download_the_node_stopped_in_goes_on_when_it_restarts(tmp_path: Any) -> None:
    # a download started in the browser was lost with a restart: the person had to find
    # the file again and start it over (what had arrived was kept, but nothing used it)
    async with node_with_ui() as a:
        ca = a.app.test_client()
        content = png_bytes(640, 480, seed=5)
        body, headers = multipart({}, "resumed.png", content)
        item = await (await ca.post("/api/files", data=body, headers=headers)).get_json()
        await ca.put("/api/settings", json={"upload_limit_kbps": 16})
        config = {"bootstrap": [f"127.0.0.1:{a.node.endpoint.local_address[1]}"], "ephemeral": False,
                  "data_dir": str(tmp_path / "b"), "repeater": "off"}

        @asynccontextmanager
        async def b_with_ui() -> AsyncIterator[Any]:
            async with open_node(node_config(**config), plugins=PLUGINS) as node:
                ui = WebUI(node, WebConfig(http_port=0))
                await node.nursery.start(ui.run_background)
                yield ui

        async with b_with_ui() as ui:
            cb = ui.app.test_client()
            await poll_json(cb, "/api/network/files", lambda d: any(f["rid"] == item["rid"] for f in d["files"]))
            cancelled = await (await cb.post("/api/downloads", json={"rid": item["rid"]})).get_json()
            await cb.delete(f"/api/downloads/{cancelled['id']}")  # cancelled: stays so
            started = await (await cb.post("/api/downloads", json={"rid": item["rid"]})).get_json()
            await poll_json(cb, f"/api/downloads/{started['id']}", lambda d: d["state"] == "running")
        # not "failed", which a page takes as over (it then never saved the resumed one)
        assert ui.downloads.get(started["id"]).as_dict()["state"] == "interrupted"
        async with b_with_ui() as ui:
            cb = ui.app.test_client()
            (again,) = (await (await cb.get("/api/downloads")).get_json())["downloads"]
            assert again["id"] == started["id"] and again["state"] in ("queued", "running")
            assert again["resumed"] is True  # (its elapsed time counts from the restart)
            await ca.put("/api/settings", json={"upload_limit_kbps": 0})
            done = await poll_json(cb, f"/api/downloads/{started['id']}",
                                   lambda d: d["state"] in ("completed", "failed"), 60)
            assert done["state"] == "completed", done
            assert await (await cb.get(done["file_url"])).get_data() == content
        async with b_with_ui() as ui:  # done: not taken up again
            assert (await (await ui.app.test_client().get("/api/downloads")).get_json())["downloads"] == []


async def test_a_download_taken_up_again_shows_its_speed_and_moves_before_a_piece_is_whole() -> None:
    # counted from 0, what was already here read as speed (1.5 MiB/s at a 100 KiB/s
    # limit); and at 16 KiB/s the bar sat at its last whole piece for 16 s at a time
    async with node_with_ui() as a:
        port = a.node.endpoint.local_address[1]
        async with node_with_ui(f"127.0.0.1:{port}") as b:
            ca, cb = a.app.test_client(), b.app.test_client()
            body, headers = multipart({}, "resume.png", png_bytes(640, 480, seed=9))
            item = await (await ca.post("/api/files", data=body, headers=headers)).get_json()
            await poll_json(cb, "/api/network/files", lambda d: any(f["rid"] == item["rid"] for f in d["files"]))
            await ca.put("/api/settings", json={"upload_limit_kbps": 16})
            manifest = a.node.store.manifest(item["rid"])
            b.node.store.begin_download(manifest)
            for piece in (0, 1):  # half a megabyte here already
                assert b.node.store.write_piece(item["rid"], piece, a.node.store.read_piece(item["rid"], piece))
            held = 2 * manifest.piece_size
            dl = await (await cb.post("/api/downloads", json={"rid": item["rid"]})).get_json()
            seen: list[tuple[int, float]] = []

            def moved(d: dict[str, Any]) -> bool:
                seen.append((d["bytes"], d["rate"]))
                return bool(d["bytes"] > held)
            await poll_json(cb, f"/api/downloads/{dl['id']}", moved)
            await cb.delete(f"/api/downloads/{dl['id']}")
            assert max(rate for _, rate in seen) < 100 * 1024, seen
            assert dl["bytes"] == held  # from the first answer on, not 0 until the swarm says
            assert held < seen[-1][0] < held + manifest.piece_size  # a part of a piece
