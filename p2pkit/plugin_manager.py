"""Loading plugins: the built-ins (listed here, once), entry points and ``module:attr``.

Every node has its own ``pluggy.PluginManager`` (the simulator runs many nodes in one
process); plugin modules are imported once per process and registered per node.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import inspect
import logging
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import pluggy

from . import hookspecs
from ._exceptions import CapabilityError, PluginError

PROJECT = "p2pkit"
ENTRY_POINT_GROUP = "p2pkit.plugins"
log = logging.getLogger("p2pkit.plugins")

# The built-in plugins, by module; the name a plugin is known by is the last part.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "p2pkit.plugins.store", "p2pkit.plugins.rudp", "p2pkit.plugins.swarm", "p2pkit.plugins.flooding",
)


def plugin_name(module_name: str) -> str:
    return module_name.rsplit(".", 1)[-1]


@functools.cache
def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"plugin {module_name!r} cannot be imported: {exc}") from None


def load_object(spec: str) -> Any:
    """``package.module:attr`` (or just a module) → the object to register."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise PluginError(f"--plugin {spec!r}: expected module:attr")
    module = _import(module_name)
    if not attr:
        return module
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"plugin {spec!r}: {module_name} has no attribute {attr!r}") from None
    return obj


@functools.cache
def _entry_point_plugins() -> tuple[importlib.metadata.EntryPoint, ...]:
    """The installed plugins' entry points, found once per process. Each is imported only
    when a node enables it: a disabled plugin costs nothing (the web UI's import is most
    of a simulated node's start-up otherwise) and a broken one can be disabled."""
    return tuple(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as exc:  # a broken third-party package must say who it is
        raise PluginError(f"entry point {ep.name!r} ({ep.value}) failed to load: {exc} (leave it "
                          f"out with [node] disable = [\"{ep.name}\"], --set node.disable="
                          f"{ep.name} or P2PKIT_NODE__DISABLE={ep.name})") from exc


_NOT_A_HOOK = object()
_UNLOADED = object()
_FUNCTION_TYPES = (types.FunctionType, types.MethodType, types.BuiltinFunctionType,
                   staticmethod, classmethod)


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, parsing each module's or class's hook markers once per process.

    pluggy inspects every attribute of a plugin with ``inspect.getattr_static`` on every
    ``register``; a simulation registers the same plugin modules and provider classes into
    one manager per node, which made that inspection most of a node's start-up time. The
    markers of a module attribute or of a class attribute cannot change, so the parsed
    options are cached by (module or class, name); attributes set on an instance are
    always parsed afresh. Hook specifications (``add_hookspecs``, per manager too) are
    cached the same way."""

    _cache: dict[tuple[str, Any, str], Any] = {}
    _spec_cache: dict[tuple[str, Any, str], Any] = {}

    def parse_hookspec_opts(self, module_or_class: Any, name: str) -> Any:
        return _cached(self._spec_cache, (self.project_name, module_or_class, name),
                       super().parse_hookspec_opts, module_or_class, name)

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        if isinstance(plugin, types.ModuleType):
            owner: Any = plugin  # the object, not its name: a module may be re-created
        elif isinstance(plugin, type):
            return super().parse_hookimpl_opts(plugin, name)
        elif name in getattr(plugin, "__dict__", ()):
            # pluggy only considers functions and methods; plain state is skipped cheaply
            if not isinstance(vars(plugin)[name], _FUNCTION_TYPES):
                return None
            return super().parse_hookimpl_opts(plugin, name)
        else:
            owner = type(plugin)
        return _cached(self._cache, (self.project_name, owner, name),
                       super().parse_hookimpl_opts, plugin, name)


def _cached(cache: dict[tuple[str, Any, str], Any], key: tuple[str, Any, str],
            parse: Callable[[Any, str], Any], obj: Any, name: str) -> Any:
    """Hook options from ``cache``, ``parse(obj, name)`` on a miss; always a fresh copy,
    since pluggy keeps the dict it is given."""
    opts = cache.get(key)
    if opts is None:
        opts = parse(obj, name)
        cache[key] = _NOT_A_HOOK if opts is None else dict(opts)
        return opts
    return None if opts is _NOT_A_HOOK else dict(opts)


OnError = Callable[[str, PluginError], None]


def create_plugin_manager(
    extra: Sequence[str | Any] = (), disabled: Iterable[str] = (), *, entry_points: bool = True,
    on_error: OnError | None = None,
) -> pluggy.PluginManager:
    """A fresh manager with the built-ins (minus ``disabled``), entry-point plugins and
    ``extra`` (``"module:attr"`` strings or objects), checked for misspelt hooks.

    A plugin that cannot be loaded or is invalid is a PluginError; with ``on_error`` it is
    reported to it as ``on_error(name, error)`` and left out instead (the command line:
    one broken plugin must not take every command with it)."""
    pm = _PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.hook.p2pkit_addhooks.call_historic(kwargs={"pluginmanager": pm})
    disabled = set(disabled)

    @contextlib.contextmanager
    def loading(name: str) -> Iterator[None]:
        try:
            yield
        except PluginError as exc:
            if on_error is None:
                raise
            on_error(name, exc)

    for module_name in BUILTIN_PLUGINS:
        name = plugin_name(module_name)
        if name not in disabled:
            with loading(name):
                register(pm, _import(module_name), name)
    if entry_points:
        for ep in _entry_point_plugins():
            if ep.name not in disabled and pm.get_plugin(ep.name) is None:
                with loading(ep.name):
                    register(pm, _load_entry_point(ep), ep.name)
    known = {plugin_name(m) for m in BUILTIN_PLUGINS} | {ep.name for ep in _entry_point_plugins()}
    for item in extra:
        obj: Any = _UNLOADED
        with loading(item if isinstance(item, str) else default_name(item)):
            obj = load_object(item) if isinstance(item, str) else item
        if obj is _UNLOADED:
            continue
        # its p2pkit_name if it has one, however it came ([node] discovery = "<name>" and
        # disable must reach it); else the spec that loaded it — two modules' `plugin =
        # Plugin()` would both be "Plugin", and a module named like a built-in clash
        explicit = getattr(obj, "p2pkit_name", None)
        name = (explicit if isinstance(explicit, str)
                else item if isinstance(item, str) else default_name(obj))
        known.add(name)
        if name in disabled or pm.is_registered(obj):  # named twice: loaded once
            continue
        with loading(name):
            register(pm, obj, name)
    for name in sorted(disabled - known):
        # a warning, not an error: one config may serve installs with other plugins
        log.warning("node.disable: no plugin is named %r (known: %s)", name, ", ".join(sorted(known)))
    check(pm, on_error)
    return pm


def default_name(obj: Any) -> str:
    """A plugin's name: its ``p2pkit_name``, a module's last part, or an object's class."""
    explicit = getattr(obj, "p2pkit_name", None)
    if isinstance(explicit, str):
        return explicit
    module_name = getattr(obj, "__name__", None)
    if isinstance(module_name, str):
        return plugin_name(module_name)
    return type(obj).__name__


def register(pm: pluggy.PluginManager, obj: Any, name: str | None) -> None:
    try:
        pm.register(obj, name=name)
    except ValueError as exc:  # pluggy: duplicate name or invalid hookimpl
        raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from None
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r} is invalid: {exc}") from None


def check(pm: pluggy.PluginManager, on_error: OnError | None = None) -> None:
    """Fail loudly on a hook implementation that matches no specification (a typo), and on
    an ``async def`` one of a synchronous hook (every hook of p2pkit's): pluggy would call
    it, get a coroutine, and nobody would ever run it. With ``on_error``, each such plugin
    is reported to it and unregistered instead."""
    for plugin, message in list(_invalid_hookimpls(pm)):
        if on_error is None:
            raise PluginError(message)
        name = pm.get_name(plugin)
        if name is not None and pm.get_plugin(name) is not None:  # once per plugin
            pm.unregister(plugin)
            on_error(name, PluginError(message))


def _invalid_hookimpls(pm: pluggy.PluginManager) -> Iterator[tuple[Any, str]]:
    for name, caller in vars(pm.hook).items():
        if name.startswith("_"):
            continue
        spec = getattr(caller, "spec", None)
        for impl in caller.get_hookimpls():
            if spec is None and not impl.optionalhook:
                yield impl.plugin, (f"plugin {impl.plugin_name!r}: unknown hook {name!r} "
                                    "(misspelt hook name?)")
            elif (spec is not None and not calls_async(spec.function)  # a plugin's own may be
                  and not (impl.hookwrapper or impl.wrapper) and calls_async(impl.function)):
                yield impl.plugin, (
                    f"plugin {impl.plugin_name!r}: hook {name} is async def, but hooks are "
                    "synchronous (called, never awaited: it would never run); make it a plain "
                    "def, and start async work as a service (p2pkit_services) or in node.nursery")


def calls_async(fn: Any) -> bool | None:
    """Whether calling ``fn`` gives a coroutine (or async generator), as far as can be told
    before calling it: True for an ``async def`` function, also as a method, through
    ``functools.partial`` or as an object's ``__call__``; False for a plain ``def`` (the same
    ways); None when it cannot be told — a builtin or compiled callable, a class, or a
    plain wrapper around an async function (``functools.wraps``'s ``__wrapped__``), which
    may well return its coroutine."""
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif isinstance(fn, (types.MethodType, staticmethod, classmethod)):
            fn = fn.__func__
        else:
            break
    if inspect.isfunction(fn):
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            return True
        try:
            inner = inspect.unwrap(fn)
        except ValueError:  # a cycle of __wrapped__
            return None
        if inner is not fn and calls_async(inner) is not False:
            return None
        return False
    if isinstance(fn, type) or not callable(fn):
        return None
    call = inspect.getattr_static(type(fn), "__call__", None)
    return calls_async(call) if inspect.isfunction(call) else None


def choose_providers(
    pm: pluggy.PluginManager, choices: dict[str, str], capabilities: Sequence[str],
) -> dict[str, tuple[str, Any]]:
    """capability → (plugin name, factory), following ``choices`` ("auto", "", or a name)."""
    offered: dict[str, dict[str, Any]] = {cap: {} for cap in capabilities}
    for impl in pm.hook.p2pkit_capabilities.get_hookimpls():
        result = cast(Mapping[str, Any], impl.function() or {})
        for cap, factory in result.items():
            if cap not in offered:
                raise CapabilityError(
                    f"plugin {impl.plugin_name!r} offers unknown capability {cap!r} "
                    f"(known: {', '.join(capabilities)})"
                )
            offered[cap][impl.plugin_name] = factory
    chosen: dict[str, tuple[str, Any]] = {}
    for cap in capabilities:
        want = choices.get(cap, "auto")
        providers = offered[cap]
        if want in ("", "none"):
            continue
        if want == "auto":
            if len(providers) > 1:
                raise CapabilityError(
                    f"capability {cap!r} is offered by {', '.join(sorted(providers))}; "
                    f"choose one with [node] {cap} = \"<name>\""
                )
            if providers:
                (name, factory), = providers.items()
                chosen[cap] = (name, factory)
            continue
        if want not in providers:
            have = ", ".join(sorted(providers)) or "no loaded plugin"
            raise CapabilityError(f"[node] {cap} = {want!r}, but it is offered by {have}")
        chosen[cap] = (want, providers[want])
    return chosen
