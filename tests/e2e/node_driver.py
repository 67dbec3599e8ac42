"""A node driven line by line on stdin, for end-to-end tests of what the CLI cannot do
(unshare while running). Commands: ``share PATH``, ``unshare RID``, ``quit``. Each answer
is one JSON line on stdout."""

from __future__ import annotations

import argparse
import json
import sys

import trio

from p2pkit.cli import add_node_arguments, config_from_args, setup_logging
from p2pkit.node import open_node


async def main(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    setup_logging(config.node.log_level)
    async with open_node(config) as node:
        print(json.dumps({"ready": node.id}), flush=True)
        stdin = trio.wrap_file(sys.stdin)
        while line := (await stdin.readline()).strip():
            cmd, _, arg = line.partition(" ")
            if cmd == "share":
                manifest = await node.share(arg)
                print(json.dumps({"shared": manifest.rid}), flush=True)
                print(f"shared    {manifest.rid}", file=sys.stderr, flush=True)
            elif cmd == "unshare":
                print(json.dumps({"unshared": await node.unshare(arg)}), flush=True)
            elif cmd == "quit":
                return


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    add_node_arguments(parser)
    trio.run(main, parser.parse_args())
