"""p2pkit's web UI: share, find and download media in the browser.

One process is one node with its UI: :class:`WebUI` builds a QuartTrio app for a node and
serves it with hypercorn's trio worker inside the node's nursery::

    async with open_node(config) as node:
        web = WebUI(node, WebConfig(http_port=3000))
        await node.nursery.start(web.serve)

From the command line: ``p2pkit web`` (see docs/webui.md).
"""

from .app import WebUI
from .config import WebConfig, is_loopback

__all__ = ["WebConfig", "WebUI", "is_loopback"]
