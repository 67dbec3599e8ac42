"""JSON shapes the API returns, built from the node and its plugins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from .app import WebUI

_SENT_KEYS = ("bytes_sent", "tx_bytes", "sent_bytes")
_RECV_KEYS = ("bytes_received", "rx_bytes", "received_bytes", "bytes_recv")


def _first(stats: Mapping[str, Any], keys: tuple[str, ...]) -> int:
    for key in keys:
        value = stats.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return 0


def _field(node: Any, name: str, default: Any = None) -> Any:
    try:
        return node.fields.get(name)
    except Exception:
        return default


def node_status(web: WebUI) -> dict[str, Any]:
    node = web.node
    try:
        host, port = node.endpoint.local_address
        udp = f"{host}:{port}"
    except Exception:
        udp = None
    peers = node.peers.all() if node.peers is not None else []
    return {
        "id": node.id, "version": node.version, "state": node.state.value, "udp": udp,
        "peers": len(peers), "online": sum(1 for p in peers if not p.closed.is_set()),
        "up_rate": round(float(_field(node, "net.up_rate", 0.0) or 0.0), 1),
        "down_rate": round(float(_field(node, "net.down_rate", 0.0) or 0.0), 1),
        "nat_type": _field(node, "nat.type") or "Unknown",
        "providers": dict(node.provider_names),
        "can_download": node.swarm is not None,
        "can_share": node.store is not None,
        "can_discover": node.discovery is not None,
        "max_upload_bytes": web.config.max_upload_mb * 1024 * 1024,
        "uptime": round(trio.current_time() - web.started_at, 1),
        "settings": node.settings.as_dict(),
    }


def sample_peer_rates(web: WebUI) -> None:
    now = trio.current_time()
    for peer in web.node.peers.all() if web.node.peers is not None else ():
        known = web.peers.get(peer.id)
        if known is not None:
            stats = _safe_stats(peer)
            known.up.sample(now, _first(stats, _SENT_KEYS))
            known.down.sample(now, _first(stats, _RECV_KEYS))


def _safe_stats(peer: Any) -> Mapping[str, Any]:
    try:
        return peer.stats() or {}
    except Exception:
        return {}


def _rate(stats: Mapping[str, Any], key: str, meter: Any, now: float, counter: int) -> float:
    """The transport's own rate when it reports one, else ours from the byte counter."""
    value = stats.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(float(value), 1)
    return round(float(meter.rate(now, counter)), 1)


def peer_rows(web: WebUI) -> list[dict[str, Any]]:
    now = trio.current_time()
    rows = []
    for pid, known in web.peers.items():
        peer = web.node.peers.get(pid) if web.node.peers is not None else None
        online = peer is not None and not peer.closed.is_set()
        # an offline peer's byte counts are those its last session ended with
        stats = _safe_stats(peer) if peer is not None else known.last_stats
        sent, received = _first(stats, _SENT_KEYS), _first(stats, _RECV_KEYS)
        rows.append({
            "id": pid, "address": known.address, "online": online,
            "enabled": bool(peer.enabled) if peer is not None else known.enabled,
            "up_rate": _rate(stats, "send_rate_Bps", known.up, now, sent) if online else 0.0,
            "down_rate": _rate(stats, "recv_rate_Bps", known.down, now, received) if online else 0.0,
            "bytes_sent": sent, "bytes_received": received,
            "rtt_ms": round(float(stats["srtt_ms"]), 1)
            if online and isinstance(stats.get("srtt_ms"), int | float) else None,
            "loss_rate": stats.get("loss_rate")
            if online and isinstance(stats.get("loss_rate"), int | float) else None,
            "nat_type": getattr(peer, "nat_type", None) if peer is not None else None,
            "agent": getattr(peer, "agent", "") if peer is not None else "",
            "connected_for": round(now - known.last_change, 1) if online else None,
            "reason": known.reason,
        })
    rows.sort(key=lambda r: (not r["online"], r["id"]))
    return rows


def peer_stats(web: WebUI) -> dict[str, Any]:
    rows = peer_rows(web)
    online = [r for r in rows if r["online"]]
    return {
        "total": len(rows), "online": len(online),
        "enabled": sum(1 for r in online if r["enabled"]),
        "up_rate": round(sum(r["up_rate"] for r in online), 1),
        "down_rate": round(sum(r["down_rate"] for r in online), 1),
        "bytes_sent": sum(r["bytes_sent"] for r in online),
        "bytes_received": sum(r["bytes_received"] for r in online),
        "nat_type": _field(web.node, "nat.type") or "Unknown",
        "max_connections": web.node.settings.max_connections,
    }


def local_file(web: WebUI, info: Any) -> dict[str, Any]:
    store = web.node.store
    manifest = store.manifest(info.rid) if store is not None else None
    return {
        "rid": info.rid, "name": info.name, "title": info.title or info.name,
        "description": info.description, "size": info.size, "mime": info.mime,
        "category": info.category, "duration": info.duration,
        "shared": bool(info.pinned), "complete": bool(info.complete),
        "progress": (info.have_pieces / info.num_pieces) if info.num_pieces else 1.0,
        "broken": bool(info.broken), "local": True, "added_ms": info.added_ms,
        "thumbnail_url": f"/api/videos/{info.rid}/thumbnail"
        if manifest is not None and manifest.thumbnail else None,
        "width": getattr(manifest, "width", None), "height": getattr(manifest, "height", None),
    }


def local_files(web: WebUI) -> list[dict[str, Any]]:
    store = web.node.store
    if store is None:
        return []
    files = [local_file(web, info) for info in store.items()]
    files.sort(key=lambda f: f["added_ms"], reverse=True)
    return files


def network_file(web: WebUI, entry: Mapping[str, Any]) -> dict[str, Any]:
    providers = [p for p in entry.get("providers", ()) if p != web.node.id]
    store = web.node.store
    rid = str(entry.get("rid", ""))
    info = store.item(rid) if store is not None else None
    manifest = store.manifest(rid) if store is not None and info is not None else None
    return {
        "rid": rid, "name": entry.get("name", ""),
        "title": entry.get("title") or entry.get("name", ""),
        "description": entry.get("description", ""), "size": entry.get("size", 0),
        "mime": entry.get("mime", ""), "category": entry.get("category", ""),
        "duration": entry.get("duration"), "providers": len(providers), "provider_ids": providers,
        "local": bool(entry.get("local")) or (info is not None and info.complete),
        "thumbnail_url": f"/api/videos/{rid}/thumbnail" if manifest is not None and manifest.thumbnail else None,
    }


def network_files(web: WebUI) -> list[dict[str, Any]]:
    if web.node.discovery is None:
        return []
    return [network_file(web, e) for e in web.node.network_files()]


def video_model(file: Mapping[str, Any]) -> dict[str, Any]:
    """Seed 004's video model (rid, title, description, thumbnail_url, duration, file_size)
    plus what the UI needs besides."""
    return {
        "rid": file["rid"], "title": file.get("title") or file.get("name", ""),
        "description": file.get("description", ""), "thumbnail_url": file.get("thumbnail_url"),
        "duration": file.get("duration"), "file_size": file.get("size", 0),
        "name": file.get("name", ""), "category": file.get("category", ""), "mime": file.get("mime", ""),
        "providers": file.get("providers", 0),
        # local: the whole file is here; progress: the share of it held here (a partial
        # download is in the store too, and was shown as "on this node")
        "local": bool(file.get("local")) and bool(file.get("complete", True)),
        "progress": float(file.get("progress", 1.0 if file.get("local") else 0.0)),
    }
