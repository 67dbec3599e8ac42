"""The plugin from docs/writing-plugins.md, run for real: two nodes ping each other."""

from typing import Any

import pytest
import trio

from docs.examples.ping_plugin import plugin as ping_plugin
from p2pkit import ConfigError, FieldError, NodeConfig, open_node
from p2pkit.plugin_manager import BUILTIN_PLUGINS, plugin_name

NO_BUILTINS = [plugin_name(m) for m in BUILTIN_PLUGINS]


def config(**ping: Any) -> NodeConfig:
    return NodeConfig.from_mapping({
        "node": {"ephemeral": True, "host": "127.0.0.1", "port": 0, "disable": NO_BUILTINS},
        "ping": ping,
    })


async def test_two_nodes_ping_each_other_over_real_udp() -> None:
    async with open_node(config(), plugins=[ping_plugin]) as b:
        target = f"127.0.0.1:{b.endpoint.local_address[1]}"
        async with open_node(config(targets=[target], interval_ms=20), plugins=[ping_plugin]) as a:
            with trio.fail_after(5):
                async with a.events.subscribe() as events:
                    async for event in events:
                        if event.kind == "ping.answered":
                            break
            assert a.fields.get("ping.answered") >= 1
            assert a.fields.get("ping.rtt_ms") > 0
            assert b.fields.get("ping.sent") == 0


async def test_hostile_datagrams_are_counted_not_fatal() -> None:
    async with open_node(config(), plugins=[ping_plugin]) as node:
        node.demux.dispatch([(b"\x4fshort", ("127.0.0.1", 9))], 0.0)
        assert node.fields.get("ping.answered") == 0
        assert node.demux.handler_errors == 0


async def test_settable_field_validates() -> None:
    async with open_node(config(), plugins=[ping_plugin]) as node:
        assert node.fields.set("ping.interval_ms", 250) == 250
        with pytest.raises(FieldError, match="between 10 and 60000"):
            node.fields.set("ping.interval_ms", 1)


@pytest.mark.parametrize(("ping", "message"), [
    # -5 crashed the running node, 0 sent ~50 000 pings a second
    ({"interval_ms": -5}, r"\[ping\]: 'interval_ms' must be >= 10"),
    ({"interval_ms": 0}, r"\[ping\]: 'interval_ms' must be >= 10"),
    ({"interval_ms": 3_600_000}, r"\[ping\]: 'interval_ms' must be <= 60000"),
    # it was reported as "bootstrap address 'nonsense'"
    ({"targets": ["nonsense"]}, r"ping\.targets 'nonsense': expected host:port"),
])
async def test_bad_ping_config_is_a_config_error_naming_the_key(ping: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        async with open_node(config(**ping), plugins=[ping_plugin]):
            pass
