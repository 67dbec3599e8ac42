import functools
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pkit import (
    CapabilityError,
    Field,
    FieldType,
    NodeConfig,
    PluginError,
    hookimpl,
    open_node,
    plugin_manager,
)
from p2pkit.hookspecs import hookspec
from p2pkit.node import Node, Service
from p2pkit.plugin_manager import BUILTIN_PLUGINS, create_plugin_manager, plugin_name

NO_BUILTINS = [plugin_name(m) for m in BUILTIN_PLUGINS]


def bare_config(**node: Any) -> NodeConfig:
    return NodeConfig.from_mapping(
        {"node": {"ephemeral": True, "host": "127.0.0.1", "port": 0, "disable": NO_BUILTINS, **node}}
    )


class StoreA:
    @hookimpl
    def p2pkit_capabilities(self) -> Mapping[str, Callable[[Node], str]]:
        return {"store": lambda node: "store-a"}


class StoreB:
    @hookimpl
    def p2pkit_capabilities(self) -> Mapping[str, Callable[[Node], str]]:
        return {"store": lambda node: "store-b"}


class Misspelt:
    @hookimpl
    def p2pkit_servces(self, node: Node) -> list[Service]:  # typo on purpose
        return []


def test_misspelt_hook_fails_loudly() -> None:
    with pytest.raises(PluginError, match="p2pkit_servces"):
        create_plugin_manager([Misspelt()], NO_BUILTINS)


def test_unimportable_plugin_is_a_clear_error() -> None:
    with pytest.raises(PluginError, match="cannot be imported"):
        create_plugin_manager(["no_such_module_anywhere:plugin"], NO_BUILTINS)
    with pytest.raises(PluginError, match="has no attribute"):
        create_plugin_manager(["p2pkit.version:nothing_here"], NO_BUILTINS)


async def test_two_providers_without_a_choice_is_an_error() -> None:
    with pytest.raises(CapabilityError, match=r"offered by .*choose one"):
        async with open_node(bare_config(), plugins=[StoreA(), StoreB()]):
            pass


async def test_config_chooses_between_providers() -> None:
    a, b = StoreA(), StoreB()
    async with open_node(bare_config(store="StoreB"), plugins=[a, b]) as node:
        assert node.store == "store-b"
        assert node.provider_names["store"] == "StoreB"


async def test_choosing_a_missing_provider_is_an_error() -> None:
    with pytest.raises(CapabilityError, match="offered by no loaded plugin"):
        async with open_node(bare_config(swarm="fancy")):
            pass


class NeedsTransport:
    class Factory:
        requires = ("transport",)

        def __init__(self, node: Node) -> None:
            self.node = node

    @hookimpl
    def p2pkit_capabilities(self) -> Mapping[str, Callable[[Node], Factory]]:
        return {"swarm": self.Factory}


async def test_missing_required_capability_is_an_error() -> None:
    with pytest.raises(CapabilityError, match="requires a transport provider"):
        async with open_node(bare_config(), plugins=[NeedsTransport()]):
            pass


def test_unknown_capability_is_an_error() -> None:
    class Weird:
        @hookimpl
        def p2pkit_capabilities(self) -> Mapping[str, Callable[[Node], None]]:
            return {"teleport": lambda node: None}

    pm = create_plugin_manager([Weird()], NO_BUILTINS)
    with pytest.raises(CapabilityError, match="unknown capability 'teleport'"):
        plugin_manager.choose_providers(pm, {}, ("store",))


@pytest.fixture
def install_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """``install(name, "module")``: a fake installed distribution declaring that plugin."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(name: str, target: str) -> None:
        dist = tmp_path / f"ep_{name}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: ep-{name}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[p2pkit.plugins]\n{name} = {target}\n")
        plugin_manager._entry_point_plugins.cache_clear()

    yield install
    plugin_manager._entry_point_plugins.cache_clear()


def test_entry_point_plugins_are_loaded(tmp_path: Path, install_entry_point: Callable[[str, str], None]) -> None:
    (tmp_path / "ep_demo_plugin.py").write_text(textwrap.dedent("""
        from p2pkit import hookimpl

        @hookimpl
        def p2pkit_capabilities():
            return {"ai": lambda node: "demo-ai"}
    """))
    install_entry_point("epdemo", "ep_demo_plugin")
    pm = create_plugin_manager([], NO_BUILTINS)
    assert pm.get_plugin("epdemo") is sys.modules["ep_demo_plugin"]
    chosen = plugin_manager.choose_providers(pm, {}, ("ai",))
    assert chosen["ai"][0] == "epdemo"


def test_a_broken_entry_point_names_itself(install_entry_point: Callable[[str, str], None]) -> None:
    install_entry_point("broken", "no_such_module_xyz")
    with pytest.raises(PluginError, match="'broken'"):
        create_plugin_manager([], NO_BUILTINS)


def test_a_disabled_entry_point_is_never_imported(tmp_path: Path, install_entry_point: Callable[[str, str], None]) -> None:
    (tmp_path / "ep_fragile.py").write_text("raise RuntimeError('importing me is a mistake')\n")
    install_entry_point("fragile", "ep_fragile")
    pm = create_plugin_manager([], [*NO_BUILTINS, "fragile"])
    assert pm.get_plugin("fragile") is None and "ep_fragile" not in sys.modules
    with pytest.raises(PluginError, match=r"'fragile'.*importing me is a mistake"):
        create_plugin_manager([], NO_BUILTINS)


def test_hook_markers_are_parsed_once_per_class_but_instances_stay_distinct() -> None:
    """Managers are built per node (the simulator builds thousands): parsing is cached by
    class or module, yet each instance's hooks are its own and instance attributes count."""

    class Counter:
        def __init__(self, value: int) -> None:
            self.value = value

        @hookimpl
        def p2pkit_fields(self, node: object) -> list[object]:
            return [self.value]

    first = create_plugin_manager([Counter(1)], NO_BUILTINS)
    second = create_plugin_manager([Counter(2)], NO_BUILTINS)
    assert first.hook.p2pkit_fields(node=None) == [[1]]
    assert second.hook.p2pkit_fields(node=None) == [[2]]

    plain = Counter(3)

    @hookimpl
    def p2pkit_fields(node: object) -> list[object]:
        return ["instance attribute"]

    plain.p2pkit_fields = p2pkit_fields  # type: ignore[method-assign]
    third = create_plugin_manager([plain], NO_BUILTINS)
    assert third.hook.p2pkit_fields(node=None) == [["instance attribute"]]
    # the class's cached entry is untouched by the instance override
    assert create_plugin_manager([Counter(4)], NO_BUILTINS).hook.p2pkit_fields(node=None) == [[4]]


def test_a_plugins_own_hook_specifications_work_in_every_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    """Specifications are parsed once per class too; their options (firstresult) hold in
    each manager, and a manager's hooks are its own."""
    import pluggy

    from p2pkit.hookspecs import hookspec

    parsed: list[str] = []
    pluggy_parse = pluggy.PluginManager.parse_hookspec_opts

    def counting_parse(self: pluggy.PluginManager, module_or_class: Any, name: str) -> Any:
        if name == "pick_colour":
            parsed.append(name)
        return pluggy_parse(self, module_or_class, name)

    monkeypatch.setattr(pluggy.PluginManager, "parse_hookspec_opts", counting_parse)

    class Specs:
        @hookspec(firstresult=True)
        def pick_colour(self) -> str: ...  # type: ignore[empty-body]

    class Adds:
        def __init__(self, colours: list[str]) -> None:
            self.colours = colours

        @hookimpl
        def p2pkit_addhooks(self, pluginmanager: Any) -> None:
            pluginmanager.add_hookspecs(Specs)
            for colour in self.colours:
                pluginmanager.register(type("Impl", (), {"pick_colour": hookimpl(lambda self, c=colour: c)})())

    first = create_plugin_manager([Adds(["red", "blue"])], NO_BUILTINS)
    second = create_plugin_manager([Adds(["green"])], NO_BUILTINS)
    assert first.hook.pick_colour() == "blue"  # firstresult: one answer, the last registered
    assert second.hook.pick_colour() == "green"
    assert first.hook.pick_colour.spec is not None and first.hook.pick_colour.spec.opts["firstresult"]
    assert parsed == ["pick_colour"]  # by the first manager only


class NamedStore:
    """A store provider that calls itself 'named' (``p2pkit_name``)."""

    p2pkit_name = "named"

    @hookimpl
    def p2pkit_capabilities(self) -> Mapping[str, Callable[[Node], str]]:
        return {"store": lambda node: "named-store"}


NAMED_STORE = NamedStore()  # loaded by spec below, as --plugin or [node] plugins would


async def test_a_plugin_loaded_by_spec_goes_by_its_p2pkit_name() -> None:
    spec = f"{__name__}:NAMED_STORE"
    # it went by the spec: [node] store = "named" found no provider, disable missed it
    async with open_node(bare_config(store="named", plugins=[spec])) as node:
        assert node.provider_names["store"] == "named" and node.store == "named-store"
    async with open_node(bare_config(disable=[*NO_BUILTINS, "named"]), plugins=[spec]) as node:
        assert node.store is None
    with pytest.raises(PluginError, match="'named' cannot be registered"):
        create_plugin_manager([spec, NamedStore()], NO_BUILTINS)  # a clash stays an error
    assert create_plugin_manager([spec, NAMED_STORE], NO_BUILTINS).get_plugin("named") is NAMED_STORE


class Plugin:
    """The common idiom `plugin = Plugin()`, without a p2pkit_name."""

    @hookimpl
    def p2pkit_capabilities(self) -> dict[str, Any]:
        return {}


FIRST_PLUGIN = Plugin()
SECOND_PLUGIN = Plugin()


def test_plugins_without_a_p2pkit_name_loaded_by_spec_go_by_the_spec() -> None:
    # both went by their class's name, "Plugin": the second could not be registered
    first, second = f"{__name__}:FIRST_PLUGIN", f"{__name__}:SECOND_PLUGIN"
    pm = create_plugin_manager([first, second], NO_BUILTINS)
    assert pm.get_plugin(first) is FIRST_PLUGIN and pm.get_plugin(second) is SECOND_PLUGIN
    assert create_plugin_manager([first, second], [*NO_BUILTINS, first]).get_plugin(first) is None


STARTED: list[str] = []


class Starter:
    """A plugin with a service that notes when it started (and why a start failed)."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.p2pkit_name = name
        self.fail = fail

    @hookimpl
    def p2pkit_services(self, node: Node) -> list[Any]:
        async def serve(*, task_status: Any) -> None:
            if self.fail:
                try:
                    int("not a number")
                except ValueError as exc:
                    raise RuntimeError("cannot start") from exc
            STARTED.append(self.p2pkit_name)
            task_status.started()
            await trio.sleep_forever()

        return [serve]


async def test_services_start_in_the_order_their_plugins_were_registered() -> None:
    # the hook's calls go from the last registered: third-party services started before
    # the transport's and the store's
    STARTED.clear()
    async with open_node(bare_config(), plugins=[Starter("first"), Starter("second")]):
        assert STARTED == ["first", "second"]
    with pytest.raises(PluginError, match="failed to start") as caught:
        async with open_node(bare_config(), plugins=[Starter("broken", fail=True)]):
            pass
    assert isinstance(caught.value.__cause__, RuntimeError)  # the plugin's own error, chained
    assert isinstance(caught.value.__cause__.__cause__, ValueError)


def test_an_unknown_name_to_disable_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    create_plugin_manager([], [*NO_BUILTINS, "ehco"])
    assert "node.disable: no plugin is named 'ehco'" in caplog.text


class Speaker:
    """A plugin whose message protocol has a given name."""

    p2pkit_name = "speaker"

    def __init__(self, name: str) -> None:
        self.name = name

    async def handle(self, peer: Any, payload: bytes) -> None:
        pass

    @hookimpl
    def p2pkit_message_protocols(self, node: Node) -> list[Any]:
        return [self]


@pytest.mark.parametrize(("name", "message"), [
    ("swarm", "registered twice"), ("x" * 33, "must be 1..32 ASCII bytes"),
    ("café", "must be 1..32 ASCII bytes"), ("", "must be 1..32 ASCII bytes")])
async def test_a_bad_message_protocol_name_is_a_plugin_error_naming_the_plugin(
        name: str, message: str) -> None:
    # each came out of open_node as a bare ExceptionGroup[ValueError/UnicodeEncodeError]
    config = NodeConfig.from_mapping({"node": {"ephemeral": True, "host": "127.0.0.1", "port": 0}})
    with pytest.raises(PluginError, match=rf"plugin 'speaker': .*{message}"):
        async with open_node(config, plugins=[Speaker(name)]):
            pass


class Bad:
    """Start-up hooks that return the wrong shape or raise, one per test case."""

    p2pkit_name = "bad"


def _bad(hook: str, body: Callable[..., Any]) -> Bad:
    plugin = Bad()
    setattr(plugin, hook, hookimpl(body))
    return plugin


async def _serve(*, task_status: Any) -> None:
    task_status.started()


def _raise(exc: Exception) -> Any:
    raise exc


@dataclass
class DataclassSection:
    rate: int = 1


@pytest.mark.parametrize(("plugin", "message"), [
    (_bad("p2pkit_services", lambda node: _serve), r"p2pkit_services must return a list of services"),
    (_bad("p2pkit_services", lambda node: [42]), r"p2pkit_services must return a list of services"),
    (_bad("p2pkit_fields", lambda node: Field("bad.x", FieldType.INT, lambda: 1)),
     r"p2pkit_fields must return a list of Fields"),
    (_bad("p2pkit_fields", lambda node: ["bad.x"]), r"p2pkit_fields failed: TypeError: expected a Field"),
    (_bad("p2pkit_fields", lambda node: _raise(AttributeError("oops"))),
     r"p2pkit_fields failed: AttributeError: oops"),
    (_bad("p2pkit_fields", lambda node: [Field("bad." + "x" * 40, FieldType.INT, lambda: 1)]),
     r"p2pkit_fields failed: FieldError"),
    (_bad("p2pkit_datagram_handlers", lambda node: [(0x41, lambda batch, now: None)]),
     r"p2pkit_datagram_handlers .* failed: TypeError"),
    (_bad("p2pkit_node_plugins", lambda node: _raise(KeyError("missing"))),
     r"p2pkit_node_plugins failed: KeyError"),
    (_bad("p2pkit_capabilities", lambda: {"ai": lambda node: _raise(RuntimeError("no model"))}),
     r"its ai factory failed: RuntimeError: no model"),
    (_bad("p2pkit_config_sections", lambda: {"bad": DataclassSection}),
     r"config section \[bad\] must be an attrs class"),
])
async def test_a_start_up_hook_that_fails_is_a_plugin_error_naming_the_plugin(
        plugin: Bad, message: str) -> None:
    with pytest.raises(PluginError, match=rf"plugin 'bad': {message}") as caught:
        async with open_node(bare_config(), plugins=[plugin]):
            pass
    assert not isinstance(caught.value, BaseExceptionGroup)


# ---------------------------------------------------------------- hooks and handlers of the wrong kind


class AsyncHooks:
    """Hooks written ``async def``, as an author used to asyncio frameworks would: pluggy
    called them, got coroutines, and nothing ever ran."""

    p2pkit_name = "asynchooks"

    @hookimpl
    async def p2pkit_event(self, node: Node, event: Any) -> None:
        pass


class AsyncStopping:
    p2pkit_name = "asyncstopping"

    @hookimpl
    async def p2pkit_node_stopping(self, node: Node) -> None:
        pass


class PerNodeAsync:
    """A module-level plugin whose per-node object has the async hook."""

    p2pkit_name = "pernode"

    @hookimpl
    def p2pkit_node_plugins(self, node: Node) -> list[Any]:
        return [AsyncStopping()]


@pytest.mark.parametrize(("plugin", "name", "hook"), [
    (AsyncHooks(), "asynchooks", "p2pkit_event"),
    (AsyncStopping(), "asyncstopping", "p2pkit_node_stopping"),
])
def test_an_async_hook_is_refused_at_start_naming_the_plugin(plugin: Any, name: str, hook: str) -> None:
    with pytest.raises(PluginError, match=rf"plugin '{name}': hook {hook} is async def"):
        create_plugin_manager([plugin], NO_BUILTINS)


async def test_an_async_hook_of_a_per_node_plugin_is_refused_at_start() -> None:
    with pytest.raises(PluginError, match=r"hook p2pkit_node_stopping is async def"):
        async with open_node(bare_config(), plugins=[PerNodeAsync()]):
            pass


def test_a_plugin_may_add_async_hooks_of_its_own() -> None:
    class Specs:
        @hookspec
        async def myplugin_fetch(self) -> None:
            """An async hook the plugin awaits itself."""

    class Adds:
        p2pkit_name = "adds"

        @hookimpl
        def p2pkit_addhooks(self, pluginmanager: Any) -> None:
            pluginmanager.add_hookspecs(Specs)

        @hookimpl
        async def myplugin_fetch(self) -> None:
            pass

    assert create_plugin_manager([Adds()], NO_BUILTINS).get_plugin("adds") is not None


class AsyncDatagrams:
    p2pkit_name = "asyncdgram"

    @hookimpl
    def p2pkit_datagram_handlers(self, node: Node) -> Any:
        async def on(batch: Any, now: float) -> None:  # async by mistake: never ran
            pass
        return [([0x4C], on)]


async def test_an_async_datagram_handler_is_refused_at_start_naming_the_plugin() -> None:
    with pytest.raises(PluginError, match=r"plugin 'asyncdgram': .*handler .* is async def"):
        async with open_node(bare_config(), plugins=[AsyncDatagrams()]):
            pass


class SyncSpeaker(Speaker):
    """A message protocol whose handle is a plain def: a TypeError for every message."""

    def handle(self, peer: Any, payload: bytes) -> None:  # type: ignore[override]
        pass


class CallableHandle:
    async def __call__(self, peer: Any, payload: bytes) -> None:
        pass


def _wrapped(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        return fn(*args)  # a plain def returning the coroutine: fine when awaited
    return wrapper


async def _handle(extra: int, peer: Any, payload: bytes) -> None:
    pass


async def test_a_message_protocol_whose_handle_is_not_async_is_refused_at_start() -> None:
    config = NodeConfig.from_mapping({"node": {"ephemeral": True, "host": "127.0.0.1", "port": 0}})
    with pytest.raises(PluginError, match=r"plugin 'speaker': .*handle must be an async def"):
        async with open_node(config, plugins=[SyncSpeaker("sync")]):
            pass
    # where it cannot be told, the protocol is taken: an object with an async __call__, a
    # functools.partial of an async def, a plain wrapper around one
    for handle in (CallableHandle(), functools.partial(_handle, 1), _wrapped(_handle)):
        speaker = Speaker("lenient")
        speaker.handle = handle  # type: ignore[method-assign]
        async with open_node(config, plugins=[speaker]) as node:
            assert node.peers is not None


def test_what_calls_async_can_tell() -> None:
    calls_async = plugin_manager.calls_async

    async def coro() -> None:
        pass

    def plain() -> None:
        pass

    class Obj:
        async def method(self) -> None:
            pass

        def __call__(self) -> None:
            pass

    assert calls_async(coro) and calls_async(Obj().method) and calls_async(functools.partial(coro))
    assert calls_async(CallableHandle()) and calls_async(functools.partial(CallableHandle()))
    assert calls_async(plain) is False and calls_async(Obj()) is False
    assert calls_async(_wrapped(plain)) is False
    assert calls_async(_wrapped(_handle)) is None  # may return its coroutine
    assert calls_async(print) is None and calls_async(Obj) is None


def test_loaded_leniently_a_broken_plugin_is_reported_and_left_out() -> None:
    # the command line's way: one broken plugin must not take the others with it
    reported: list[tuple[str, str]] = []

    class Good:
        @hookimpl
        def p2pkit_fields(self, node: object) -> list[object]:
            return [1]

    good = Good()
    pm = create_plugin_manager(
        ["no_such_module_anywhere:plugin", Misspelt(), AsyncHooks(), good], NO_BUILTINS, entry_points=False,
        on_error=lambda name, exc: reported.append((name, str(exc))))
    why = dict(reported)
    assert sorted(why) == ["Misspelt", "asynchooks", "no_such_module_anywhere:plugin"]
    assert "p2pkit_servces" in why["Misspelt"] and "is async def" in why["asynchooks"]
    assert pm.get_plugins() == {good}
    assert pm.hook.p2pkit_fields(node=None) == [[1]]
