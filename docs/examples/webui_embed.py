"""Embed the web UI in your own trio program: a node, its UI on a free port, one upload
through the HTTP API, then stop. Run: ``python -m docs.examples.webui_embed``."""

from __future__ import annotations

from typing import Any

import cv2
import httpx
import numpy as np
import trio
from p2pkit.webui import WebConfig, WebUI

from p2pkit import NodeConfig, open_node


async def main() -> dict[str, Any]:
    config = NodeConfig.from_mapping({"node": {"port": 0, "ephemeral": True}})
    async with open_node(config) as node:
        web = WebUI(node, WebConfig(host="127.0.0.1", http_port=0))
        binds = await node.nursery.start(web.serve)  # hypercorn, inside the node's nursery
        base = binds[0]
        print("web UI at", base)
        _, png = cv2.imencode(".png", np.full((120, 160, 3), (40, 140, 240), np.uint8))
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.post("/api/files", files={"file": ("blue.png", png.tobytes(), "image/png")},
                                       data={"title": "A blue square"})
            response.raise_for_status()
            item: dict[str, Any] = response.json()
        print(f"shared {item['name']} ({item['category']}, {item['size']} bytes) as {item['rid']}")
        return item


if __name__ == "__main__":
    trio.run(main)
