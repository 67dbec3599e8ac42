"""The node: one nursery that owns every task, socket and plugin of one peer.

    async with open_node(config) as node:
        ...            # the node runs while the block runs

Leaving the block — normally, by an exception or by cancellation — cancels every task of
every plugin and closes the endpoint; nothing outlives it.
"""

from __future__ import annotations

import enum
import fcntl
import logging
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import attrs
import pluggy
import trio

from ._exceptions import (
    CapabilityError,
    ConfigError,
    NodeStateError,
    P2PKitError,
    PluginError,
    SessionClosed,
    leaf_exceptions,
)
from .addresses import parse_address
from .capabilities import CAPABILITIES, Discovery, ProgressFn, SharedContent, Store
from .config import CORE_SECTIONS, NodeConfig, check_section_class
from .demux import Demultiplexer
from .endpoint import Address, DatagramEndpoint
from .events import ContentAdded, ContentRemoved, Event, EventBus, GenericEvent
from .fields import Field, FieldRegistry, FieldType
from .identity import Identity
from .peers import PeerManager
from .plugin_manager import check, choose_providers, create_plugin_manager, default_name, register
from .rates import RateMeter
from .rids import parse_rid
from .settings import SETTINGS, Settings
from .version import __version__

log = logging.getLogger("p2pkit.node")


class Service(Protocol):
    def __call__(self, *, task_status: trio.TaskStatus[Any] = ...) -> Awaitable[None]: ...


class NodeState(enum.Enum):
    CREATED = "created"  # built, nothing started
    STARTING = "starting"  # plugins loading, services starting
    RUNNING = "running"  # every service reported ready
    STOPPING = "stopping"  # the nursery is being cancelled
    STOPPED = "stopped"  # everything closed (also after a failed start)


class Node:
    """A running peer. Build it with :func:`open_node`."""

    def __init__(
        self, config: NodeConfig, identity: Identity, pm: pluggy.PluginManager,
        data_dir: Path | None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.id: str = identity.node_id
        self.version = __version__
        self.data_dir = data_dir
        self.pm = pm
        self.hook = pm.hook
        self.state = NodeState.CREATED
        self.log = logging.getLogger(f"p2pkit.node.{self.id[:8]}")
        self.fields = FieldRegistry()
        self.events = EventBus(self._observe)
        self.demux = Demultiplexer()
        self.providers: dict[str, Any] = {}
        self.provider_names: dict[str, str] = {}
        self.observer_errors = 0
        # seconds a stop may spend taking leave of peers; 0 = vanish (a simulated crash)
        self.stop_grace = config.node.stop_grace
        self._nursery: trio.Nursery | None = None
        self._endpoint: DatagramEndpoint | None = None
        self.peers: PeerManager | None = None
        self.settings = Settings(
            config.cfg, data_dir / "node.sqlite" if data_dir else None, self._setting_changed,
            explicit=config.explicit_cfg(),
        )
        self._up = RateMeter()
        self._down = RateMeter()

    # ------------------------------------------------------------------ accessors

    @property
    def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise NodeStateError("the node is not running")
        return self._nursery

    @property
    def endpoint(self) -> DatagramEndpoint:
        if self._endpoint is None:
            raise NodeStateError("the node has no endpoint yet")
        return self._endpoint

    def capability(self, name: str) -> Any:
        """The provider of a capability; CapabilityError if the node has none."""
        try:
            return self.providers[name]
        except KeyError:
            raise CapabilityError(f"this node has no {name} provider") from None

    transport = property(lambda self: self.providers.get("transport"))
    store = property(lambda self: self.providers.get("store"))
    discovery = property(lambda self: self.providers.get("discovery"))
    swarm = property(lambda self: self.providers.get("swarm"))
    ai = property(lambda self: self.providers.get("ai"))

    # ------------------------------------------------------------------ events

    def emit(self, event: Event) -> None:
        """Publish an event to observers (hook) and subscribers (``node.events``)."""
        self.events.emit(event)

    def _observe(self, event: Event) -> None:
        for impl in reversed(self.hook.p2pkit_event.get_hookimpls()):
            try:
                impl.function(**{k: v for k, v in {"node": self, "event": event}.items() if k in impl.argnames})
            except Exception:
                self.observer_errors += 1
                log.exception("event observer %s failed on %s", impl.plugin_name, event.kind)

    def _setting_changed(self, key: str, value: Any) -> None:
        self.emit(GenericEvent(kind="settings.changed", data={"key": key, "value": value}))

    # ------------------------------------------------------------------ library API

    def _serving(self, what: str) -> None:
        """The library API works from start-up until the node stops; before or after, a
        NodeStateError rather than whatever a closed store or stale list would answer."""
        if self.state not in (NodeState.STARTING, NodeState.RUNNING):
            raise NodeStateError(f"{what}: the node is {self.state.value}, not running")

    async def share(self, path: Path | str, *, title: str | None = None, description: str = "",
                    progress: ProgressFn | None = None) -> SharedContent:
        """Import a media file into the store (pinned) and announce it; returns its manifest."""
        self._serving("share")
        store: Store = self.capability("store")
        manifest = await store.import_file_async(
            Path(path), title=title, description=description, progress=progress)
        self.emit(ContentAdded(rid=manifest.rid, name=manifest.name, local=True))
        return manifest

    async def unshare(self, rid: str) -> bool:
        """Stop sharing ``rid`` (capitals are fine) and remove it from the store; the network
        is told. False if it was not here; ValueError if ``rid`` is not a content id."""
        self._serving("unshare")
        rid = parse_rid(rid)
        removed = bool(self.capability("store").remove(rid))
        if removed:
            self.emit(ContentRemoved(rid=rid, local=True))
        return removed

    def network_files(self) -> Sequence[Mapping[str, Any]]:
        """Every file the network offers, as this node knows it (rid, name, size,
        category, title, description, providers...: the discovery plugin's docs)."""
        self._serving("network_files")
        discovery: Discovery = self.capability("discovery")
        return discovery.network_files()

    async def search(self, query: str) -> Sequence[Mapping[str, Any]]:
        """Files whose title, description or name contain ``query`` (case-insensitive),
        here and as far as the discovery plugin's search reaches."""
        self._serving("search")
        discovery: Discovery = self.capability("discovery")
        return await discovery.search(query)

    async def download(self, rid: str, dest: Path | str | None = None, *,
                       progress: ProgressFn | None = None) -> Path:
        """Download ``rid`` from the peers that have it, verified; returns the file's path.
        ``dest`` is passed on as given: as text, a trailing slash means a directory."""
        self._serving("download")
        swarm = self.capability("swarm")
        return await swarm.download(rid, dest, progress=progress)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ fields

    def _up_rate(self) -> float:
        return self._up.rate(trio.current_time(), self.endpoint.stats.bytes_sent)

    def _down_rate(self) -> float:
        return self._down.rate(trio.current_time(), self.endpoint.stats.bytes_received)

    def _kernel_fields(self) -> list[Field]:
        fields = [
            Field("node.id", FieldType.STR, lambda: self.id, description="this node's id (hex)"),
            Field("node.version", FieldType.STR, lambda: self.version, description="p2pkit version"),
            Field("node.state", FieldType.STR, lambda: self.state.value, description="lifecycle state"),
            Field("node.address", FieldType.STR,
                  lambda: "{}:{}".format(*self.endpoint.local_address), description="UDP address"),
            Field("peer.count", FieldType.INT, lambda: len(self.peers) if self.peers else 0,
                  description="connected peers"),
            Field("net.up_rate", FieldType.FLOAT, self._up_rate,
                  description="bytes/s sent, sliding 5 s window"),
            Field("net.down_rate", FieldType.FLOAT, self._down_rate,
                  description="bytes/s received, sliding 5 s window"),
            Field("net.bytes_sent", FieldType.INT, lambda: self.endpoint.stats.bytes_sent,
                  description="bytes sent on the node's socket since start"),
            Field("net.bytes_received", FieldType.INT, lambda: self.endpoint.stats.bytes_received,
                  description="bytes received on the node's socket since start"),
            Field("meta.fields", FieldType.JSON, self.fields.describe,
                  description="every field with its type and whether it is settable"),
        ]
        fields.extend(self._setting_field(key) for key in SETTINGS)
        return fields

    def _setting_field(self, key: str) -> Field:
        def setter(value: Any) -> None:
            self.settings.set(key, value)

        return Field(f"cfg.{key}", SETTINGS[key].type, lambda: self.settings.get(key),
                     setter=setter, description=SETTINGS[key].description)

    async def _serve(
        self, endpoint: DatagramEndpoint, bootstrap: list[Address], stopping: trio.CancelScope,
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Every task of the node, in its own nursery under ``stopping``; reports started
        once every service is ready."""
        with stopping:
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await self._start_services(nursery, endpoint, bootstrap)
                    # shielded only now: a node cancelled while it starts stops at once
                    stopping.shield = True
                    task_status.started()
                    await trio.sleep_forever()
            finally:
                self._nursery = None  # what ends here cannot take leave any more

    async def _start_services(
        self, nursery: trio.Nursery, endpoint: DatagramEndpoint, bootstrap: list[Address],
    ) -> None:
        await nursery.start(endpoint.run, self.demux.dispatch)
        by_plugin: dict[str, list[Any]] = {}
        for plugin, service in _plugin_items(self.hook.p2pkit_services, "a list of services",
                                             node=self):
            if not callable(service):
                raise PluginError(f"plugin {plugin!r}: p2pkit_services must return a list of "
                                  f"services (async functions), one is {service!r}")
            by_plugin.setdefault(plugin, []).append(service)
        # plugins in the order they were registered (the hook's calls go the other way):
        # the transport's and the store's services are up before those that use them
        for service in (s for group in reversed(by_plugin.values()) for s in group):
            try:
                await nursery.start(service)
            except P2PKitError:
                raise
            except Exception as exc:  # a plugin's bug, named as such
                name = getattr(service, "__qualname__", repr(service))
                raise PluginError(f"service {name} failed to start: "
                                  f"{type(exc).__name__}: {exc}") from exc
        if self.peers is not None:
            await nursery.start(self.peers.serve)
        if self.data_dir is not None:  # simulated nodes read endpoint stats directly
            nursery.start_soon(self._sample_rates)
        socket_path = _repeater_path(self.config, self.data_dir)
        if socket_path is not None:
            from .repeater.server import serve_repeater

            await nursery.start(serve_repeater, self.fields, socket_path)
        if bootstrap and (self.peers is not None or self.discovery is not None):
            nursery.start_soon(self._bootstrap, bootstrap)

    async def _take_leave(self) -> None:
        """Plugins' last messages (``p2pkit_node_stopping``), then every session closed
        in order, within ``stop_grace`` seconds (``[node] stop_grace``). Shielded: a node
        stopped by cancellation (Ctrl-C, an enclosing scope) takes its leave too, for
        that long at most."""
        if self.stop_grace <= 0 or self._nursery is None:  # vanishing, or already failed
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.stop_grace
            # each plugin on its own: one that raises must not cost the others their
            # last messages (flooding's farewell, say) nor keep the node from stopping
            for impl in reversed(self.hook.p2pkit_node_stopping.get_hookimpls()):
                if impl.hookwrapper or impl.wrapper:
                    continue  # (a wrapper is a generator around the others: nothing to call alone)
                try:
                    impl.function(*({"node": self}[arg] for arg in impl.argnames))
                except Exception:
                    log.exception("plugin %r failed while the node was stopping", impl.plugin_name)
            if self.peers is not None:
                await self.peers.close_all("the node is stopping")

    async def _sample_rates(self) -> None:
        """Feed the rate meters once a second so the window is always a real window."""
        while True:
            now, stats = trio.current_time(), self.endpoint.stats
            self._up.sample(now, stats.bytes_sent)
            self._down.sample(now, stats.bytes_received)
            await trio.sleep(1.0)

    # ------------------------------------------------------------------ bootstrap

    async def _bootstrap(self, addresses: list[Address]) -> None:
        discovery = self.discovery
        if discovery is not None:
            await discovery.bootstrap(addresses)
            return
        assert self.peers is not None
        async with trio.open_nursery() as nursery:
            for addr in addresses:
                nursery.start_soon(self._dial_until_connected, addr)

    async def _dial_until_connected(self, addr: Address) -> None:
        """Retry with backoff: the peer may start after us (demo, tests)."""
        assert self.peers is not None
        delay = 0.5
        while True:
            try:
                await self.peers.connect(addr)
                return
            except (SessionClosed, trio.TooSlowError, OSError) as exc:
                log.info("bootstrap %s:%s not reachable yet (%s)", addr[0], addr[1], exc)
            await trio.sleep(delay)
            delay = min(delay * 2, 30.0)


DATA_DIR_LOCK = "node.lock"  # in the data dir, held while a node uses it


def _lock_data_dir(data_dir: Path) -> int:
    """Hold ``data_dir`` for this node (an advisory ``flock``, released with the
    descriptor, also when the process dies): a second node started on it by mistake —
    in another process or in this one — is refused before it reads or writes anything
    there (settings included)."""
    try:
        fd = os.open(data_dir / DATA_DIR_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"data directory {data_dir} cannot be locked: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(f"data directory {data_dir} is in use by another node (each node "
                          "needs one of its own: start this one with --profile NAME or "
                          "--data-dir DIR)") from None
    return fd


def _resolve_data_dir(config: NodeConfig) -> Path | None:
    data_dir = config.data_path()
    if data_dir is None:
        return None
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = data_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"data directory {data_dir} is not writable: {exc.strerror}") from None
    return data_dir


def _repeater_path(config: NodeConfig, data_dir: Path | None) -> Path | None:
    """Where the repeater listens: an explicit path always; by default only for nodes
    with a data directory (an ephemeral node has nowhere to put the socket) whose path
    leaves room for a Unix socket's name — a node in a deep directory runs without
    the repeater it did not ask for, and says so."""
    from .repeater.server import SOCKET_PATH_MAX

    if config.node.repeater == "off":
        return None
    if config.node.repeater:
        path = Path(config.node.repeater).expanduser()
        if len(os.fsencode(path)) > SOCKET_PATH_MAX:
            raise ConfigError(f"node.repeater: socket path {str(path)!r} is longer than "
                              f"{SOCKET_PATH_MAX} bytes, the most a Unix socket allows; "
                              "choose a shorter path")
        return path
    if data_dir is None:
        return None
    path = data_dir / "repeater.sock"
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        log.warning("no repeater: its socket %s would be longer than a Unix socket allows "
                    "(%d bytes); set node.repeater to a shorter path to have one",
                    path, SOCKET_PATH_MAX)
        return None
    return path


def _config_sections(pm: pluggy.PluginManager) -> dict[str, type]:
    """Every plugin's config section classes, checked: one owner per name, attrs classes."""
    sections: dict[str, type] = {}
    owners: dict[str, str] = {}
    for impl in reversed(pm.hook.p2pkit_config_sections.get_hookimpls()):
        plugin = impl.plugin_name
        with _blamed(plugin, "p2pkit_config_sections"):
            result = impl.function() or {}
        if not isinstance(result, Mapping):
            raise PluginError(f"plugin {plugin!r}: p2pkit_config_sections must return "
                              f"{{\"name\": AttrsClass}}, got {result!r}")
        for name, cls in result.items():
            if name in CORE_SECTIONS:
                raise PluginError(f"plugin {plugin!r}: config section [{name}] is the kernel's")
            if name in owners:
                first, second = sorted((owners[name], plugin))
                raise PluginError(f"config section [{name}] is claimed by two plugins: "
                                  f"{first!r} and {second!r}")
            if not (isinstance(cls, type) and attrs.has(cls)):
                raise PluginError(f"plugin {plugin!r}: config section [{name}] must be "
                                  f"an attrs class (@attrs.define), got {cls!r}")
            try:
                check_section_class(cls, name)
            except ConfigError as exc:  # the section's author's mistake, not the user's
                raise PluginError(f"plugin {plugin!r}: {exc}") from None
            sections[name] = cls
            owners[name] = plugin
    return sections


def _build_providers(node: Node) -> None:
    choices = {cap: getattr(node.config.node, cap) for cap in CAPABILITIES}
    chosen = choose_providers(node.pm, choices, CAPABILITIES)
    for cap, (plugin, factory) in chosen.items():
        for needed in getattr(factory, "requires", ()):
            if needed not in chosen:
                raise CapabilityError(
                    f"{cap} provider {plugin!r} requires a {needed} provider, and none is loaded"
                )
    for cap, (plugin, factory) in chosen.items():
        with _blamed(plugin, f"its {cap} factory"):
            provider = factory(node)
        node.providers[cap] = provider
        node.provider_names[cap] = plugin
        register(node.pm, provider, f"{plugin}:{cap}")
    for _plugin, obj in _plugin_items(node.hook.p2pkit_node_plugins, "a list of plugin objects",
                                      node=node):
        register(node.pm, obj, f"{default_name(obj)}@{id(obj):x}")
    check(node.pm)


def _build_peers(node: Node) -> None:
    """The peer layer and its message protocols, checked before any task starts: a bad
    protocol name is the plugin's error, named as such."""
    if node.transport is None:
        return
    node.peers = PeerManager(node, node.transport)
    for plugin, proto in _plugin_items(node.hook.p2pkit_message_protocols,
                                       "a list of message protocols", node=node):
        with _blamed(plugin, "p2pkit_message_protocols"):
            node.peers.add_protocols([proto])


@contextmanager
def _blamed(plugin: str, what: str) -> Iterator[None]:
    """A plugin's bug in start-up code (``what``) as a PluginError naming the plugin, its
    own exception chained; a ConfigError (the user's config, naming the key) stays one."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin {plugin!r}: {what} failed: {type(exc).__name__}: {exc}") from exc


def _plugin_items(hook: Any, shape: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
    """``(plugin name, item)`` for every item of every plugin's result of a start-up hook
    that returns an iterable, in the order the hook's call would give; a plugin that
    raises, or returns something else, is a PluginError naming it."""
    for impl in reversed(hook.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        with _blamed(impl.plugin_name, hook.name):
            result = impl.function(*(kwargs[arg] for arg in impl.argnames))
        if result is None:
            continue
        if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
            raise PluginError(f"plugin {impl.plugin_name!r}: {hook.name} must return {shape}, "
                              f"got {type(result).__name__} {result!r}")
        for item in result:
            yield impl.plugin_name, item


@asynccontextmanager
async def open_node(
    config: NodeConfig | None = None,
    *,
    endpoint: DatagramEndpoint | None = None,
    identity: Identity | None = None,
    plugins: Sequence[str | Any] = (),
) -> AsyncIterator[Node]:
    """Start a node and yield it once every service is ready; stop it all on exit.

    ``endpoint`` replaces the real UDP socket (the simulator passes a virtual one);
    ``identity`` replaces the persisted key; ``plugins`` adds plugins (objects or
    ``"module:attr"``) to the built-ins, the entry points and ``[node] plugins``.
    """
    if isinstance(plugins, (str, bytes)):  # a str is a Sequence[str]: one plugin per letter
        raise TypeError(f"plugins must be a list of plugins, not one string: plugins=[{plugins!r}]")
    config = config or NodeConfig()
    pm = create_plugin_manager([*config.node.plugins, *plugins], config.node.disable)
    config.bind_sections(_config_sections(pm))
    bootstrap = [parse_address(a) for a in config.node.bootstrap]
    data_dir = _resolve_data_dir(config)
    lock_fd = _lock_data_dir(data_dir) if data_dir is not None else -1
    try:
        if identity is None:
            identity = (Identity.generate() if data_dir is None
                        else Identity.load_or_create(data_dir / "identity.key"))
        node = Node(config, identity, pm, data_dir)
    except BaseException:
        if lock_fd >= 0:
            os.close(lock_fd)
        raise
    node.state = NodeState.STARTING
    owns_endpoint = endpoint is None
    try:
        _build_providers(node)
        if endpoint is None:
            from .udp import UdpEndpoint  # the kernel's own real socket

            endpoint = await UdpEndpoint.open(config.node.host, config.node.port)
        node._endpoint = endpoint
        for plugin, pair in _plugin_items(node.hook.p2pkit_datagram_handlers,
                                          "a list of (first bytes, handler) pairs", node=node):
            with _blamed(plugin, "p2pkit_datagram_handlers (a list of ([first bytes], handler))"):
                first_bytes, handler = pair
                node.demux.register(first_bytes, handler)
        for field in node._kernel_fields():
            node.fields.register(field)
        for plugin, field in _plugin_items(node.hook.p2pkit_fields, "a list of Fields", node=node):
            with _blamed(plugin, "p2pkit_fields"):
                if not isinstance(field, Field):
                    raise TypeError(f"expected a Field, got {field!r}")
                node.fields.register(field)
        _build_peers(node)
        body_error: BaseException | None = None
        try:
            async with trio.open_nursery() as host:
                # Once started, the node's tasks run shielded from the caller's
                # cancellation (Ctrl-C, an enclosing scope), so that stopped that way it
                # still takes its leave; ``stopping`` ends them after that, whatever
                # happens meanwhile (a second Ctrl-C passes any shield).
                stopping = trio.CancelScope()
                try:
                    await host.start(node._serve, endpoint, bootstrap, stopping)
                    node.state = NodeState.RUNNING
                    try:
                        yield node
                    except BaseException as exc:
                        body_error = exc
                        raise
                    finally:
                        node.state = NodeState.STOPPING
                        try:
                            await node._take_leave()
                        except BaseException as exc:  # a second Ctrl-C: the caller's, too
                            body_error = exc
                            raise
                finally:
                    stopping.cancel()
        except BaseExceptionGroup as group:
            # The caller's own exception comes back as itself, not wrapped in a group; so
            # does the one error that stopped the start (a PluginError, a ConfigError...)
            leaves = leaf_exceptions(group)  # (a service's error crosses two nurseries)
            if body_error is not None and leaves == [body_error]:
                raise body_error from body_error.__cause__
            if body_error is None and len(leaves) == 1 and isinstance(leaves[0], P2PKitError):
                raise leaves[0] from leaves[0].__cause__
            if len(group.exceptions) == 1 and isinstance(group.exceptions[0], BaseExceptionGroup):
                # a service's error, as the node's own nursery raised it (not wrapped
                # again by the caller's side of it)
                raise group.exceptions[0] from None
            raise
    finally:
        node._nursery = None
        if owns_endpoint and endpoint is not None:
            endpoint.close()
        for provider in node.providers.values():
            closer: Callable[[], None] | None = getattr(provider, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception:
                    log.exception("closing provider %r failed", provider)
        node.settings.close()
        node.state = NodeState.STOPPED
        if lock_fd >= 0:
            os.close(lock_fd)
        node.events.close()  # subscribers outside the node's block learn that it stopped


__all__ = ["Node", "NodeState", "Service", "open_node", "parse_address"]
