"""Node lifecycle over the real UDP endpoint: everything started is stopped."""

import socket
from pathlib import Path

import attrs
import pytest
import trio

from p2pkit import (
    ConfigError,
    Event,
    Node,
    NodeConfig,
    NodeState,
    NodeStateError,
    PluginError,
    open_node,
)
from p2pkit.events import GenericEvent
from p2pkit.node import Service
from p2pkit.plugin_manager import BUILTIN_PLUGINS, plugin_name

NO_BUILTINS = [plugin_name(m) for m in BUILTIN_PLUGINS]


def config(tmp_path: Path | None = None, **node: object) -> NodeConfig:
    base = {"host": "127.0.0.1", "port": 0, "disable": NO_BUILTINS}
    if tmp_path is None:
        base["ephemeral"] = True
    else:
        base["data_dir"] = str(tmp_path)
    base.update(node)
    return NodeConfig.from_mapping({"node": base})


class Probe:
    """A per-node plugin with a service whose life we can watch."""

    def __init__(self) -> None:
        self.started = trio.Event()
        self.cancelled = False
        self.events: list[str] = []

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        self.started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.cancelled = True
            raise

    from p2pkit import hookimpl

    @hookimpl
    def p2pkit_services(self, node: Node) -> list[Service]:
        return [self.serve]

    @hookimpl
    def p2pkit_event(self, node: Node, event: Event) -> None:
        self.events.append(event.kind)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_leaving_the_block_stops_services_and_closes_the_socket() -> None:
    probe = Probe()
    async with open_node(config(), plugins=[probe]) as node:
        assert node.state is NodeState.RUNNING
        assert probe.started.is_set()
        port = node.endpoint.local_address[1]
        assert not port_is_free(port)
    # leaving the block stopped it; mypy still holds the RUNNING narrowed above
    assert node.state is NodeState.STOPPED  # type: ignore[comparison-overlap]
    assert probe.cancelled
    assert port_is_free(port)


async def test_an_error_in_the_body_stops_everything() -> None:
    probe = Probe()
    with pytest.raises(RuntimeError, match="user code failed"):
        async with open_node(config(), plugins=[probe]) as node:
            port = node.endpoint.local_address[1]
            raise RuntimeError("user code failed")
    assert probe.cancelled
    assert node.state is NodeState.STOPPED
    assert port_is_free(port)


async def test_outer_cancellation_stops_everything() -> None:
    probe = Probe()
    with trio.move_on_after(0.5):
        async with open_node(config(), plugins=[probe]) as node:
            port = node.endpoint.local_address[1]
            await trio.sleep_forever()
    assert probe.cancelled
    assert node.state is NodeState.STOPPED
    assert port_is_free(port)


async def test_a_crashing_service_takes_the_node_down_cleanly() -> None:
    class Crasher:
        from p2pkit import hookimpl

        @hookimpl
        def p2pkit_services(self, node: Node) -> list[Service]:
            async def serve(
                    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                task_status.started()
                await trio.sleep(0.01)
                raise ValueError("plugin bug")

            return [serve]

    probe = Probe()
    # one group, as the node's own nursery raised it (not nested in the caller's side's)
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="plugin bug")):
        async with open_node(config(), plugins=[Crasher(), probe]):
            await trio.sleep_forever()
    assert probe.cancelled


async def test_a_service_that_fails_to_start_is_a_plugin_error_naming_it() -> None:
    # it came out as a bare ExceptionGroup: callers needed except* for a start-up failure
    class Broken:
        from p2pkit import hookimpl

        @hookimpl
        def p2pkit_services(self, node: Node) -> list[Service]:
            async def broken_service(
                    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                raise RuntimeError("cannot open the thing")

            return [broken_service]

    with pytest.raises(PluginError, match="broken_service failed to start: RuntimeError: cannot open the thing"):
        async with open_node(config(), plugins=[Broken()]):
            pytest.fail("the node must not start")


async def test_identity_and_settings_persist_in_the_data_dir(tmp_path: Path) -> None:
    async with open_node(config(tmp_path, repeater="off")) as node:
        first_id = node.id
        node.fields.set("cfg.cache_limit_mb", 77)
        node.fields.set("cfg.p2p_enabled", False)
    async with open_node(config(tmp_path, repeater="off")) as node:
        assert node.id == first_id
        assert node.fields.get("cfg.cache_limit_mb") == 77
        assert node.settings.p2p_enabled is False


async def test_a_second_node_on_a_data_dir_in_use_is_refused_before_touching_it(
        tmp_path: Path) -> None:
    # the complaint: a second node started by mistake on a running node's data dir was
    # refused only by the store, after it had written its cfg over the first one's
    async with open_node(config(tmp_path, repeater="off")) as node:
        node.fields.set("cfg.cache_limit_mb", 4096)
        second = NodeConfig.from_mapping({
            "node": {"host": "127.0.0.1", "port": 0, "disable": NO_BUILTINS,
                     "data_dir": str(tmp_path), "repeater": "off"},
            "cfg": {"cache_limit_mb": 1, "p2p_enabled": False}})
        with pytest.raises(ConfigError, match="in use by another node"):
            async with open_node(second):
                pytest.fail("the second node must not start")
        first_id = node.id
    async with open_node(config(tmp_path, repeater="off")) as node:
        assert node.id == first_id
        assert node.fields.get("cfg.cache_limit_mb") == 4096
        assert node.settings.p2p_enabled is True


async def test_the_data_dir_is_free_again_once_its_node_stopped_or_failed_to_start(
        tmp_path: Path) -> None:
    class Broken:
        from p2pkit import hookimpl

        @hookimpl
        def p2pkit_services(self, node: Node) -> list[Service]:
            raise RuntimeError("boom")

    with pytest.raises(PluginError):
        async with open_node(config(tmp_path, repeater="off"), plugins=[Broken()]):
            pass
    async with open_node(config(tmp_path, repeater="off")):
        pass
    async with open_node(config(tmp_path, repeater="off")):
        pass


async def test_a_setting_changed_after_the_node_stopped_is_refused(tmp_path: Path) -> None:
    async with open_node(config(tmp_path, repeater="off")) as node:
        pass
    with pytest.raises(NodeStateError, match="stopped"):
        node.settings.set("cache_limit_mb", 100)
    with pytest.raises(NodeStateError, match="stopped"):
        node.fields.set("cfg.cache_limit_mb", 100)
    with pytest.raises(NodeStateError, match="stopped"):
        node.settings.update({"cache_limit_mb": 100})
    async with open_node(config(tmp_path, repeater="off")) as node:
        assert node.fields.get("cfg.cache_limit_mb") != 100


async def test_one_plugin_failing_as_the_node_stops_costs_the_others_nothing() -> None:
    said: list[str] = []

    class Polite:
        from p2pkit import hookimpl

        @hookimpl
        def p2pkit_node_stopping(self, node: Node) -> None:
            said.append("goodbye")

    class Rude:
        from p2pkit import hookimpl

        @hookimpl
        def p2pkit_node_stopping(self, node: Node) -> None:
            raise RuntimeError("a bug in a plugin")

    # registered after Polite, so called before it (pluggy calls the last first)
    async with open_node(config(), plugins=[Polite(), Rude()]):
        pass
    assert said == ["goodbye"]


async def test_plugins_given_as_one_string_is_a_type_error_not_one_plugin_per_letter() -> None:
    with pytest.raises(TypeError, match="a list of plugins"):
        async with open_node(config(), plugins="docs.examples.ping_plugin:plugin"):  # type: ignore[arg-type]
            pass


async def test_a_data_dir_too_deep_for_the_default_repeater_socket_runs_without_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    async with open_node(config(deep)) as node:
        assert node.state is NodeState.RUNNING
    assert "no repeater" in caplog.text
    assert not (deep / "repeater.sock").exists()
    with pytest.raises(ConfigError, match=r"node\.repeater: socket path"):
        async with open_node(config(tmp_path / "x", repeater=str(deep / "r.sock"))):
            pass


class SectionPlugin:
    def __init__(self, name: str, sections: dict[str, type]) -> None:
        self.p2pkit_name = name
        self.sections = sections

    from p2pkit import hookimpl

    @hookimpl
    def p2pkit_config_sections(self) -> dict[str, type]:
        return self.sections


@attrs.define
class ChatSection:
    nick: str = "anon"


@attrs.define
class SetSection:
    tags: set[str] = attrs.field(factory=set)


@attrs.define
class UnannotatedSection:
    level = attrs.field(default=1)  # type: ignore[var-annotated]  # what the test is about


@attrs.define
class UnresolvedSection:
    log_file: "NotImportedAtRunTime | None" = None  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize(("plugins", "message"), [
    ([SectionPlugin("one", {"chat": ChatSection}), SectionPlugin("two", {"chat": ChatSection})],
     r"config section \[chat\] is claimed by two plugins: 'one' and 'two'"),
    ([SectionPlugin("one", {"node": ChatSection})], r"plugin 'one': config section \[node\] is the kernel's"),
    ([SectionPlugin("tags", {"tags": SetSection})], r"plugin 'tags': tags.tags: type set\[str\] is not supported"),
    ([SectionPlugin("bare", {"bare": UnannotatedSection})],
     r"plugin 'bare': bare.level: the field has no type annotation"),  # was a bare KeyError
    ([SectionPlugin("late", {"late": UnresolvedSection})],
     r"plugin 'late': \[late\]: an annotation cannot be resolved"),
])
async def test_a_plugin_s_config_section_mistakes_are_plugin_errors_naming_it_at_start(
        plugins: list[SectionPlugin], message: str) -> None:
    with pytest.raises(PluginError, match=message):
        async with open_node(config(), plugins=plugins):
            pass


async def test_kernel_fields_are_registered() -> None:
    async with open_node(config()) as node:
        names = {f["name"] for f in node.fields.get("meta.fields")}
        assert {"node.id", "node.version", "peer.count", "net.up_rate", "net.down_rate",
                "net.bytes_sent", "net.bytes_received", "cfg.p2p_enabled",
                "cfg.upload_limit_kbps", "cfg.cache_limit_mb", "meta.fields"} <= names
        assert node.fields.get("node.id") == node.id
        assert node.fields.get("peer.count") == 0


async def test_setting_a_setting_emits_an_event() -> None:
    probe = Probe()
    async with open_node(config(), plugins=[probe]) as node, node.events.subscribe() as events:
        node.fields.set("cfg.upload_limit_kbps", 64)
        event = events.receive_nowait()
        assert isinstance(event, GenericEvent)
        assert event.data == {"key": "upload_limit_kbps", "value": 64}
    assert "settings.changed" in probe.events


async def test_busy_port_is_an_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match="already in use"):
            async with open_node(config(port=port)):
                pass


async def test_unwritable_data_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="not writable"):
        async with open_node(config(blocker / "sub")):
            pass


async def test_bad_bootstrap_address_names_it() -> None:
    with pytest.raises(ConfigError, match="bootstrap address 'nowhere'"):
        async with open_node(config(bootstrap=["nowhere"])):
            pass


def test_a_bootstrap_port_of_unicode_digits_is_a_config_error() -> None:
    from p2pkit.node import parse_address

    with pytest.raises(ConfigError, match="bootstrap address"):
        parse_address("peer:7²")  # str.isdigit() accepts '²', int() does not


class SlowStart:
    """A service that takes 30 s to start."""

    from p2pkit import hookimpl

    @hookimpl
    def p2pkit_services(self, node: Node) -> list[Service]:
        async def serve(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            await trio.sleep(30)
            task_status.started()

        return [serve]


async def test_a_node_cancelled_while_it_starts_stops_at_once() -> None:
    """The node's tasks ran shielded from the start: cancelled while a service started,
    the node finished starting and then waited for ever."""
    with trio.fail_after(10):  # a hang is a failure, not a stuck suite
        with trio.move_on_after(0.2) as scope:
            async with open_node(config(), plugins=[SlowStart()]):
                pytest.fail("the node cannot have started")  # pragma: no cover
    assert scope.cancelled_caught


class InterruptedFarewell:
    """A second Ctrl-C while the node takes its leave (KeyboardInterrupt passes shields)."""

    from p2pkit import hookimpl

    @hookimpl
    def p2pkit_node_stopping(self, node: Node) -> None:
        raise KeyboardInterrupt


async def test_an_interrupt_while_the_node_takes_its_leave_still_stops_it() -> None:
    probe = Probe()
    with trio.fail_after(10), pytest.raises(KeyboardInterrupt):
        async with open_node(config(), plugins=[InterruptedFarewell(), probe]):
            pass
    assert probe.cancelled


@pytest.mark.parametrize("host", ["999.1.1.1", "no.such.host.invalid", "a\x00b"])
async def test_a_host_that_does_not_resolve_is_a_config_error_naming_it(host: str) -> None:
    # it was a bare socket.gaierror ("error: Name or service not known" in the CLI)
    with pytest.raises(ConfigError, match=r"node\.host: cannot use"):
        async with open_node(config(host=host)):
            pass


async def test_event_subscribers_outside_the_block_end_when_the_node_stops() -> None:
    # such a loop ran for ever after STOPPED: nothing ever told it
    seen: list[str] = []
    ended = trio.Event()
    async with trio.open_nursery() as outer:
        async with open_node(config()) as node:
            async def watch(task_status: trio.TaskStatus[None]) -> None:
                async with node.events.subscribe() as events:
                    task_status.started()
                    async for event in events:
                        seen.append(event.kind)
                ended.set()

            await outer.start(watch)
            node.settings.set("max_connections", 7)
        with trio.fail_after(10):
            await ended.wait()
    assert node.state is NodeState.STOPPED
    assert seen == ["settings.changed"]  # what came before the stop is still delivered
    async with node.events.subscribe() as late:
        assert [event async for event in late] == []  # a late subscriber ends at once
