"""``p2pkit ctl``: read and set a running node's fields through its repeater socket.

    p2pkit ctl list
    p2pkit ctl get peer.count
    p2pkit ctl set cfg.upload_limit_kbps 512
    p2pkit ctl --socket /tmp/p2p_repeater.sock get node.id

The socket defaults to the node's: ``node.repeater`` from the environment
(``P2PKIT_NODE__REPEATER``) or ``<data-dir>/repeater.sock``, where the data directory comes
from ``--data-dir``/``--profile`` (or their ``P2PKIT_NODE__*`` variables) exactly as for
``p2pkit node``. VALUE is parsed by the field's type: int (``42``, ``0x2a``), float, bool
(true/false/1/0/yes/no/on/off), str (as typed), bytes (hex), json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._exceptions import ConfigError, P2PKitError
from ..config import load_config
from ..fields import FieldType
from .client import FieldInfo, RepeaterClient
from .errors import RepeaterError, RepeaterRemoteError

__all__ = ["add_ctl_command", "default_socket_path", "format_value", "main", "parse_value"]

SOCKET_NAME = "repeater.sock"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_LIST_VALUE_WIDTH = 64  # a node id (64 hex digits) is shown whole


def add_ctl_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``ctl`` to the ``p2pkit`` sub-command parsers; sets ``func=run_ctl``."""
    ctl: argparse.ArgumentParser = subparsers.add_parser(
        "ctl",
        help="read or set a running node's fields (repeater client)",
        description="Read or set a running node's fields through its repeater socket.",
    )
    ctl.add_argument("--socket", type=Path, metavar="PATH",
                     help="repeater socket (default: <data-dir>/repeater.sock)")
    ctl.add_argument("--data-dir", help="the node's data directory")
    ctl.add_argument("--profile", help="the node's profile (default: 'default')")
    ctl.add_argument("--config", type=Path, help="the node's TOML config file")
    ctl.add_argument("--timeout", type=_seconds, default=5.0, help="seconds to wait for a reply")
    actions = ctl.add_subparsers(dest="ctl_action", metavar="ACTION", required=True)
    get = actions.add_parser("get", help="print a field's value")
    get.add_argument("field")
    set_ = actions.add_parser("set", help="set a settable field (prints the new value)")
    set_.add_argument("field")
    set_.add_argument("value")
    listing = actions.add_parser("list", help="every field with its type and current value")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ctl.set_defaults(func=run_ctl)
    return ctl


def default_socket_path(
    *, data_dir: str | None = None, profile: str | None = None, config: Path | None = None
) -> Path:
    """Where ``p2pkit node`` with the same options puts its repeater socket."""
    node: dict[str, Any] = {}
    if data_dir:
        node["data_dir"] = data_dir
    if profile:
        node["profile"] = profile
    cfg = load_config(config, overrides={"node": node})
    if cfg.node.repeater == "off":
        raise ConfigError("node.repeater is 'off' in the config: that node has no repeater")
    if cfg.node.repeater:
        return Path(cfg.node.repeater).expanduser()
    data_path = cfg.data_path()
    if data_path is None:
        raise ConfigError("node.ephemeral is set: an ephemeral node has no default socket; "
                          "pass --socket")
    return data_path / SOCKET_NAME


def parse_value(ftype: FieldType, text: str) -> Any:
    """VALUE from the command line for a field of type ``ftype``; ValueError if it is bad."""
    if ftype is FieldType.INT:
        try:
            return int(text, 0)
        except ValueError:
            raise ValueError("expected an integer such as 42 or 0x2a") from None
    if ftype is FieldType.FLOAT:
        try:
            return float(text)
        except ValueError:
            raise ValueError("expected a number such as 2.5") from None
    if ftype is FieldType.BOOL:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"expected true/false, got {text!r}")
    if ftype is FieldType.BYTES:
        try:
            return bytes.fromhex(text.removeprefix("0x"))
        except ValueError:
            raise ValueError("expected hex digits such as cafe") from None
    if ftype is FieldType.JSON:
        return json.loads(text)
    return text


def format_value(ftype: FieldType, value: Any, *, compact: bool = False) -> str:
    """How ``get`` and ``list`` print a value (the inverse of :func:`parse_value`)."""
    if isinstance(value, bool) and ftype is FieldType.BOOL:
        return "true" if value else "false"
    if ftype is FieldType.BYTES or isinstance(value, bytes):
        return bytes(value).hex()
    if ftype is FieldType.JSON:
        return json.dumps(value, ensure_ascii=False, indent=None if compact else 2)
    return str(value)


def _seconds(text: str) -> float:
    """``--timeout``: a finite number > 0 (nan and -1 were tracebacks, 0 an EAGAIN)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def run_ctl(args: argparse.Namespace) -> int:
    """Carry out one ``ctl`` command; errors are one line on stderr and exit code 1."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        path = args.socket or default_socket_path(
            data_dir=args.data_dir, profile=args.profile, config=args.config
        )
        with RepeaterClient(path, timeout=args.timeout) as client:
            if args.ctl_action == "get":
                return _get(client, args.field)
            if args.ctl_action == "set":
                return _set(client, args.field, args.value)
            return _list(client, as_json=args.json)
    except RepeaterRemoteError as exc:
        err.print(f"[red]error:[/red] the node says: {escape(str(exc))}")
    except P2PKitError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
    return 1


def _info(client: RepeaterClient, field: str) -> FieldInfo:
    info = client.info(field)
    if info is None:
        if not client.fields():
            raise RepeaterError(f"the node does not publish meta.fields; cannot tell the "
                                f"type of {field!r}")
        raise RepeaterError(f"unknown field {field!r} (see `p2pkit ctl list`)")
    return info


def _get(client: RepeaterClient, field: str) -> int:
    info = _info(client, field)
    print(format_value(info.type, client.get(field)))
    return 0


def _set(client: RepeaterClient, field: str, text: str) -> int:
    info = _info(client, field)
    if not info.settable:
        raise RepeaterError(f"field {field!r} is read-only")
    try:
        value = parse_value(info.type, text)
    except ValueError as exc:
        raise RepeaterError(f"{field} is {info.type.value}: cannot parse {text!r} ({exc})") from None
    print(format_value(info.type, client.set(field, value)))
    return 0


def _list(client: RepeaterClient, *, as_json: bool) -> int:
    fields = client.fields(refresh=True)
    if not fields:
        raise RepeaterError("the node does not publish meta.fields")
    rows: list[tuple[FieldInfo, Any, str | None]] = []
    for info in fields.values():
        try:
            rows.append((info, client.get(info.name), None))
        except RepeaterRemoteError as exc:
            rows.append((info, None, str(exc)))
    if as_json:
        print(json.dumps([
            {"name": info.name, "type": info.type.value, "settable": info.settable,
             **({"error": error} if error else {"value": _jsonable(info.type, value)})}
            for info, value, error in rows
        ], ensure_ascii=False, indent=2))
        return 0
    table = Table(title=f"fields on {client.path}")
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("type")
    table.add_column("settable")
    table.add_column("value", overflow="fold")
    for info, value, error in rows:
        if error is not None:
            shown = f"[red]{escape(error)}[/red]"
        elif info.name == "meta.fields":
            shown = f"({len(value)} fields)"
        else:
            shown = format_value(info.type, value, compact=True)
            if len(shown) > _LIST_VALUE_WIDTH:
                shown = shown[: _LIST_VALUE_WIDTH - 1] + "…"
            shown = escape(shown)
        table.add_row(info.name, info.type.value, "yes" if info.settable else "", shown)
    Console(highlight=False).print(table)
    return 0


def _jsonable(ftype: FieldType, value: Any) -> Any:
    return bytes(value).hex() if ftype is FieldType.BYTES else value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m p2pkit.repeater.cli ...``: the ctl command on its own."""
    parser = argparse.ArgumentParser(prog="p2pkit")
    add_ctl_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
