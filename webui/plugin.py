"""The ``web`` plugin: the ``[web]`` config section and the ``p2pkit web`` command.

    p2pkit web [node flags] [--http-port 3000] [--host 127.0.0.1] [--share FILE]

One process is one node with its UI: the HTTP server runs in the node's own nursery.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Mapping
from typing import Any

import attrs

from p2pkit.hookspecs import hookimpl

from .config import WebConfig, check_token, is_loopback


@hookimpl
def p2pkit_config_sections() -> Mapping[str, type]:
    return {"web": WebConfig}


@hookimpl
def p2pkit_cli_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    from p2pkit.cli import add_node_arguments, add_share_arguments

    parser = subparsers.add_parser(
        "web", help="run a node with its web UI until Ctrl-C", conflict_handler="resolve",
        description="Start a node and serve its web UI (default http://127.0.0.1:3000).")
    add_node_arguments(parser)
    # In this command --host is the HTTP address (as the issue and seed 000 use it);
    # the UDP address moves to --udp-host.
    parser.add_argument("--udp-host", dest="udp_host", help="UDP bind address")
    parser.add_argument("--host", dest="http_host", default=None,
                        help="HTTP bind address (default 127.0.0.1; others need the token)")
    parser.add_argument("--http-port", type=int, default=None, help="HTTP port (default 3000, 0 = any)")
    parser.add_argument("--token", default=None, help="access token (default: generated when needed)")
    parser.add_argument("--max-upload-mb", type=int, default=None, help="largest upload accepted")
    add_share_arguments(parser)
    parser.set_defaults(func=cmd_web)


def web_config(args: argparse.Namespace, section: WebConfig) -> tuple[WebConfig, str | None]:
    """Flags over the ``[web]`` section; the token to require (None on loopback)."""
    from p2pkit._exceptions import ConfigError

    host = args.http_host or section.host
    port = section.http_port if args.http_port is None else args.http_port
    if not 0 <= port < 65536:
        raise ConfigError(f"--http-port {port}: expected 0..65535")
    max_upload = section.max_upload_mb if args.max_upload_mb is None else args.max_upload_mb
    if max_upload <= 0:
        raise ConfigError("--max-upload-mb must be > 0")
    token = args.token or section.token or None
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    try:
        merged = attrs.evolve(section, host=host, http_port=port, max_upload_mb=max_upload,
                              token=token or "")
    except ValueError as exc:  # the section's own checks, on the flags' values
        raise ConfigError(str(exc)) from None
    return merged, token


def display_url(bind: str, host: str, token: str | None) -> str:
    """``http://0.0.0.0:3000`` → a URL a person can open (and with the token, if any)."""
    scheme, _, address = bind.partition("://")
    _, _, port = address.rpartition(":")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    url = f"{scheme}://{shown}:{port}/"
    return f"{url}?token={token}" if token else url


def cmd_web(args: argparse.Namespace) -> int:
    import trio

    from p2pkit._exceptions import ConfigError
    from p2pkit.cli import (
        ConsoleNotices,
        check_share_arguments,
        config_from_args,
        console,
        describe,
        run_until_interrupted,
        setup_logging,
        share_files,
    )
    from p2pkit.node import open_node

    from .app import WebUI

    config = config_from_args(args)
    check_share_arguments(args, config)  # (media checked only when the built-in store is used)
    try:
        check_token(args.token or "")  # before the node starts, as the other flags are
    except ValueError as exc:
        raise ConfigError(str(exc).replace("web.token", "--token")) from None
    setup_logging(config.node.log_level)

    async def main() -> None:
        # Notices on the console too: the page shows them, a terminal left open should
        async with open_node(config, plugins=[ConsoleNotices()]) as node:
            section = node.config.section("web")
            web_cfg, token = web_config(args, section)
            web = WebUI(node, web_cfg, token=token)
            try:
                binds = await node.nursery.start(web.serve)
            except OSError as exc:
                raise ConfigError(f"cannot listen on {web_cfg.host}:{web_cfg.http_port}: "
                                  f"{exc.strerror or exc} (choose another --http-port)") from None
            await trio.lowlevel.checkpoint_if_cancelled()  # not "started" after "stopping…"
            describe(node)
            await share_files(node, args.share or (), args.unshare)
            await trio.lowlevel.checkpoint_if_cancelled()
            url = display_url(binds[0], web_cfg.host, token)
            print(f"web UI: {url}", flush=True)
            if token:
                console.print("  [yellow]anyone with this link controls the node; keep the token secret[/yellow]")
            await trio.sleep_forever()

    return run_until_interrupted(main)


__all__ = ["cmd_web", "p2pkit_cli_commands", "p2pkit_config_sections"]
