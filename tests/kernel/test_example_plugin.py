"""The plugin from docs/writing-plugins.md, run for real: two nodes ping each other."""

import socket
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


class Resolver(trio.abc.HostnameResolver):
    """Names for the test: ``ping-b.test`` is loopback, any other name does not exist."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def getaddrinfo(self, host: bytes | str | None, port: bytes | str | int | None,
                          family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        if name != "ping-b.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", int(port or 0)))]

    async def getnameinfo(self, sockaddr: tuple[str, int] | tuple[str, int, int, int],
                          flags: int) -> tuple[str, str]:
        raise NotImplementedError


async def test_targets_given_by_name_are_resolved_once_and_one_that_does_not_resolve_is_named(
        caplog: pytest.LogCaptureFixture) -> None:
    # the example sent to the name itself: sendto looked it up, blocking, for every ping,
    # and a name that did not resolve was lost without a word
    resolver = Resolver()
    trio.socket.set_custom_hostname_resolver(resolver)
    async with open_node(config(), plugins=[ping_plugin]) as b:
        targets = [f"ping-b.test:{b.endpoint.local_address[1]}", "nowhere.test:7"]
        async with open_node(config(targets=targets, interval_ms=10), plugins=[ping_plugin]) as a:
            with trio.fail_after(5):
                async with a.events.subscribe() as events:
                    answers = 0
                    async for event in events:
                        answers += event.kind == "ping.answered"
                        if answers == 3:
                            break
    assert sorted(resolver.lookups) == ["nowhere.test", "ping-b.test"]  # once each
    assert "ping.targets nowhere.test:7 does not resolve" in caplog.text
