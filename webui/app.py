"""The web UI of one node: a QuartTrio app plus the background tasks that feed it.

    web = WebUI(node, WebConfig(http_port=0))
    binds = await node.nursery.start(web.serve)   # hypercorn's trio worker, in the node

``WebUI.run_background`` alone (no HTTP server) is what tests use with Quart's test client.
Other plugins add routes through the ``p2pkit_web_routes(node, app)`` hook.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio
from quart import current_app
from quart_trio import QuartTrio

from p2pkit.events import Event, GenericEvent, PeerDown, PeerUp
from p2pkit.rates import RateMeter

from .auth import install_access_checks, install_security_headers
from .config import WebConfig, check_token, is_loopback
from .downloads import DownloadManager
from .errors import install_body_limit, install_error_handlers
from .file_responses import FileResponse
from .history import History
from .hub import Hub, LogRelay, event_message
from .peer_choices import SwitchedOffPeers
from .unfinished import UnfinishedDownloads
from .views import node_status, sample_peer_rates

log = logging.getLogger("p2pkit.webui")
STATUS_INTERVAL = 2.0
MAX_KNOWN_PEERS = 500
HERE = Path(__file__).parent


class KnownPeer:
    """What the UI remembers of a peer, also after it went offline."""

    def __init__(self, peer_id: str, address: str) -> None:
        self.id = peer_id
        self.address = address
        self.online = True
        self.enabled = True
        self.first_seen = trio.current_time()
        self.last_change = self.first_seen
        self.reason = ""
        self.last_stats: Mapping[str, Any] = {}  # of its last session, shown while offline
        self.up = RateMeter(window=5.0, resolution=0.5)
        self.down = RateMeter(window=5.0, resolution=0.5)


class WebUI:
    def __init__(self, node: Any, config: WebConfig | None = None, *, token: str | None = None) -> None:
        self.node = node
        self.config = config or WebConfig()
        self.token = token if token is not None else (self.config.token or None)
        self.loopback_only = is_loopback(self.config.host)
        if not self.loopback_only and not self.token:
            raise ValueError("a web UI bound to a non-loopback address needs an access token")
        check_token(self.token or "")
        self._tmp: str | None = None
        if node.data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="p2pkit-webui-")
            weakref.finalize(self, shutil.rmtree, self._tmp, ignore_errors=True)
            root = Path(self._tmp)
        else:
            root = Path(node.data_dir) / "webui"
        self.root = root.resolve()
        self.uploads_dir = self.root / "uploads"
        self.downloads_dir = self.root / "downloads"
        # downloads of an earlier run were already handed to the browser; the store keeps its copy
        shutil.rmtree(self.downloads_dir, ignore_errors=True)
        for d in (self.uploads_dir, self.downloads_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.hub = Hub()
        self.history = History(Path(node.data_dir) / "webui.sqlite" if node.data_dir else None,
                               max_entries=self.config.history_entries)
        self.unfinished = UnfinishedDownloads(Path(node.data_dir) / "webui.sqlite" if node.data_dir else None)
        self.downloads = DownloadManager(node, self.hub, self.history, self.downloads_dir, self.unfinished)
        self.peers: dict[str, KnownPeer] = {}
        self.switched_off = SwitchedOffPeers(Path(node.data_dir) / "webui.sqlite" if node.data_dir else None)
        for peer_id, address in self.switched_off.addresses.items():  # listed, to switch back on
            known = self.peers[peer_id] = KnownPeer(peer_id, address)
            known.online, known.enabled = False, False
        self.uploads_in_progress: set[Path] = set()
        self.upload_slots = trio.CapacityLimiter(4)
        self.started_at = trio.current_time()
        self.app = self._build_app()

    # ------------------------------------------------------------------ the app

    def _build_app(self) -> QuartTrio:
        app = QuartTrio(
            "p2pkit.webui", static_folder=str(HERE / "static"), static_url_path="/static",
            template_folder=str(HERE / "templates"),
        )
        app.response_class = FileResponse  # Range ends clamped to the file (file_responses.py)
        # the upload route enforces its own limit while streaming; JSON routes read at most 64 KiB
        app.config["MAX_CONTENT_LENGTH"] = self.config.max_upload_mb * 1024 * 1024 + 1024 * 1024
        app.config["BODY_TIMEOUT"] = 600
        app.json.sort_keys = False  # type: ignore[attr-defined]
        app.extensions["p2pkit.webui"] = self
        install_error_handlers(app)
        install_access_checks(app, self.token, self.loopback_only)
        install_body_limit(app)
        install_security_headers(app)
        from .routes import register_all

        register_all(app)
        self.node.hook.p2pkit_web_routes(node=self.node, app=app)
        return app

    # ------------------------------------------------------------------ running

    async def run_background(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Event pump, log relay and status ticks; runs until cancelled or until the node
        stops (its events end: one started outside the node's block then returns)."""
        relay = LogRelay(self.hub, trio.lowlevel.current_trio_token())
        logging.getLogger("p2pkit").addHandler(relay)
        self.sweep_uploads()
        try:
            self.downloads.resume_unfinished()
            for peer in self.node.peers.all() if self.node.peers is not None else ():
                self._peer_up(peer.id, f"{peer.address[0]}:{peer.address[1]}")
            async with trio.open_nursery() as nursery, self.node.events.subscribe() as events:
                nursery.start_soon(self._tick_status)
                task_status.started()
                async for event in events:
                    try:
                        self._on_event(event)
                    except Exception:  # a UI bug must never take the node down
                        log.exception("web UI failed to handle %s", event.kind)
                nursery.cancel_scope.cancel()  # the node stopped: no status left to tick
        finally:
            logging.getLogger("p2pkit").removeHandler(relay)
            self.history.close()
            self.switched_off.close()
            self.unfinished.close()

    async def serve(self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        """Background tasks plus hypercorn's trio worker; ``started`` with the bound URLs."""
        from hypercorn.config import Config
        from hypercorn.trio import serve

        config = Config()
        host = self.config.host
        config.bind = [f"[{host}]:{self.config.http_port}" if ":" in host else f"{host}:{self.config.http_port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("p2pkit.webui.http")
        config.graceful_timeout = 1.0
        config.websocket_ping_interval = 20.0
        config.websocket_max_message_size = 64 * 1024  # clients only send pings
        _check_bindable(host, self.config.http_port)  # a clear error before any task starts
        async with trio.open_nursery() as nursery:
            await nursery.start(self.run_background)
            binds = await nursery.start(lambda task_status: serve(
                self.app, config, shutdown_trigger=trio.sleep_forever, task_status=task_status))
            task_status.started(binds)

    def sweep_uploads(self) -> None:
        """Upload directories whose file is no longer shared (e.g. after a crash) go."""
        from .uploads import sweep_orphans

        store = self.node.store
        keep = {i.source for i in store.items() if i.source} if store is not None else set()
        sweep_orphans(self.uploads_dir, keep, self.uploads_in_progress)

    # ------------------------------------------------------------------ events

    def _on_event(self, event: Event) -> None:
        if isinstance(event, PeerUp):
            self._peer_up(event.peer_id, f"{event.address[0]}:{event.address[1]}")
        elif isinstance(event, PeerDown):
            known = self.peers.get(event.peer_id)
            if known is not None:
                known.online, known.reason, known.last_stats = False, event.reason, event.stats
                known.last_change = trio.current_time()
        elif isinstance(event, GenericEvent) and event.kind == "download.progress":
            self.downloads.on_swarm_progress(event.data)
        message = event_message(event)
        if message is not None:
            self.hub.publish(message)

    def _peer_up(self, peer_id: str, address: str) -> None:
        known = self.peers.get(peer_id)
        if known is None:
            known = self.peers[peer_id] = KnownPeer(peer_id, address)
            known.enabled = peer_id not in self.switched_off
            self._forget_old_peers()
        known.online, known.address, known.reason = True, address, ""
        known.last_change = trio.current_time()
        peer = self.node.peers.get(peer_id) if self.node.peers is not None else None
        if peer is not None and not known.enabled:
            peer.enabled = False  # the user switched this peer off earlier

    def _forget_old_peers(self) -> None:
        offline = sorted((p.last_change, pid) for pid, p in self.peers.items() if not p.online)
        for _, pid in offline[: max(0, len(self.peers) - MAX_KNOWN_PEERS)]:
            del self.peers[pid]

    async def _tick_status(self) -> None:
        while True:
            await trio.sleep(STATUS_INTERVAL)
            try:
                sample_peer_rates(self)
                if self.hub.client_count:
                    self.hub.publish({"type": "status", "status": node_status(self)})
            except Exception:  # a UI bug must never take the node down
                log.exception("web UI status tick failed")


def _check_bindable(host: str, port: int) -> None:
    """Raise OSError now if ``host:port`` cannot be listened on (hypercorn would fail
    later, deep inside its nurseries)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host.strip("[]"), port))


def web_ui() -> WebUI:
    """The WebUI serving the current request."""
    return current_app.extensions["p2pkit.webui"]  # type: ignore[no-any-return]
