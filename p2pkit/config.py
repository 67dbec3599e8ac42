"""Node configuration: attrs classes filled from a TOML file, ``P2PKIT_*`` environment
variables and command-line flags, in that order of precedence (later wins).

Every key is checked: an unknown key or a value of the wrong type is a ConfigError that
names the key and the expected type. Plugins add their own sections (hook
``p2pkit_config_sections``); those are validated once the plugins are loaded.

Environment variables: ``P2PKIT_<SECTION>__<KEY>``, e.g. ``P2PKIT_NODE__PORT=7701`` or
``P2PKIT_RUDP__HEARTBEAT_MS=500``. Lists are comma-separated; booleans are
true/false/1/0/yes/no/on/off.
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import platformdirs

from ._exceptions import ConfigError, validator_message

log = logging.getLogger(__name__)
T = TypeVar("T")
ENV_PREFIX = "P2PKIT_"
CORE_SECTIONS = ("node", "cfg")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
LOG_LEVELS = ("debug", "info", "warning", "error")


def _port(_inst: Any, attr: Any, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"node.{attr.name} must be 0..65535 (0 = any free port), got {value}")


def _grace(_inst: Any, attr: Any, value: float) -> None:
    if not 0 <= value <= 10:
        raise ValueError(f"node.{attr.name} must be 0..10 seconds, got {value}")


def _log_level(_inst: Any, attr: Any, value: str) -> None:
    if value not in LOG_LEVELS:
        raise ValueError(f"node.{attr.name}: expected one of {', '.join(LOG_LEVELS)}, got {value!r}")


@attrs.define
class NodeSection:
    """``[node]``: where and how the node runs."""

    profile: str = "default"
    data_dir: str = ""  # "" = the platform's user data dir for the profile
    ephemeral: bool = False  # no disk state at all (simulator, tests)
    host: str = "0.0.0.0"
    port: int = attrs.field(default=7700, validator=_port)
    bootstrap: list[str] = attrs.field(factory=list)  # "host:port" of peers to contact
    log_level: str = attrs.field(default="info", validator=_log_level)
    plugins: list[str] = attrs.field(factory=list)  # extra "module:attr" plugins
    disable: list[str] = attrs.field(factory=list)  # names of plugins not to load
    repeater: str = ""  # Unix socket path; "" = <data_dir>/repeater.sock; "off" = none
    # How long a stopping node lets its sessions deliver their last messages (a flooding
    # node's "my files are gone") and close: peers then know at once, not a timeout later.
    stop_grace: float = attrs.field(default=0.5, validator=_grace)
    # Which plugin provides each capability; "auto" = the only one offering it.
    transport: str = "auto"
    discovery: str = "auto"
    store: str = "auto"
    swarm: str = "auto"
    ai: str = "auto"


@attrs.define
class CfgSection:
    """``[cfg]``: the runtime settings at start. A key given explicitly (TOML, environment,
    flag) wins over a value set at run time and stored; one left out yields to it."""

    p2p_enabled: bool = True
    # KiB/s (kibibytes, not kilobits: the name is the product spec's); 0 = none set: rudp
    # finds the node's limit (uplink_target_ms)
    upload_limit_kbps: int = 0
    cache_limit_mb: int = 2048
    max_connections: int = 50


@attrs.define
class NodeConfig:
    node: NodeSection = attrs.field(factory=NodeSection)
    cfg: CfgSection = attrs.field(factory=CfgSection)
    # sections owned by plugins: raw mappings until bind_sections() validates them
    raw_sections: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    # [cfg] keys some source (TOML, environment, flag, mapping) gave: see explicit_cfg()
    cfg_given: frozenset[str] = attrs.field(factory=frozenset)
    _bound: dict[str, Any] = attrs.field(factory=dict, alias="_bound")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> NodeConfig:
        """Build from ``{"node": {...}, "cfg": {...}, "<plugin>": {...}}`` (typed values)."""
        return _build(data)

    def explicit_cfg(self) -> frozenset[str]:
        """The ``[cfg]`` keys given explicitly, whose values beat those stored at run
        time: the keys a source named, and any that differ from the built-in default (a
        ``CfgSection`` made in code)."""
        defaults = attrs.asdict(CfgSection())
        return frozenset(key for key, value in attrs.asdict(self.cfg).items()
                         if key in self.cfg_given or value != defaults[key])

    def section(self, name: str) -> Any:
        """The validated attrs instance of a plugin's section."""
        try:
            return self._bound[name]
        except KeyError:
            raise ConfigError(f"config section [{name}] is not known to any loaded plugin") from None

    def bind_sections(self, classes: Mapping[str, type]) -> None:
        """Validate plugin sections against their classes. A section no loaded plugin
        owns is an error (a typo), unless ``[node] disable`` names plugins: then it may
        be a disabled plugin's, left in a config that serves both — a warning."""
        for name in self.raw_sections:
            if name not in classes:
                if not self.node.disable:
                    raise ConfigError(f"unknown config section [{name}] (no loaded plugin owns it)")
                log.warning("config section [%s] is ignored: no loaded plugin owns it (disabled: %s)",
                            name, ", ".join(self.node.disable))
        for name, cls in classes.items():
            self._bound[name] = convert(cls, self.raw_sections.get(name, {}), name)

    def data_path(self) -> Path | None:
        """The data directory, or None for an ephemeral node."""
        if self.node.ephemeral:
            return None
        if self.node.data_dir:
            return Path(self.node.data_dir).expanduser()
        return Path(platformdirs.user_data_dir("p2pkit")) / self.node.profile


def load_config(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> NodeConfig:
    """TOML file, then environment, then ``overrides`` (CLI flags), later wins."""
    return _build(merged_sources(path, env=env, overrides=overrides))


def merged_sources(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The raw ``{section: {key: value}}`` of the TOML file, then the environment, then
    ``overrides``, later wins: what :func:`load_config` checks and builds."""
    merged: dict[str, dict[str, Any]] = {}
    if path is not None:
        _merge(merged, read_toml(Path(path)))
    _merge(merged, env_overrides(os.environ if env is None else env))
    if overrides:
        _merge(merged, {k: dict(v) for k, v in overrides.items()})
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 (a file saved as UTF-16 or Latin-1)
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for name, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: top-level key {name!r} must be a [section]")
    return data


def env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``P2PKIT_SECTION__KEY=value`` → ``{"section": {"key": _FromText("value")}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        if section and key:
            out.setdefault(section, {})[key] = FromText(value, f"environment variable {name}")
    return out


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` (a ``--set`` flag) → (section, key, text value)."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    return section, key, FromText(value, f"--set {name}")


@attrs.frozen
class FromText:
    """A value that arrived as text (environment, CLI) and is parsed by the target type."""

    text: str
    origin: str


def _merge(into: dict[str, dict[str, Any]], data: Mapping[str, Any]) -> None:
    for section, values in data.items():
        into.setdefault(section, {}).update(values)


def _build(data: Mapping[str, Any]) -> NodeConfig:
    for name, values in data.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"config section [{name}] must be a table")
    return NodeConfig(
        node=convert(NodeSection, data.get("node", {}), "node"),
        cfg=convert(CfgSection, data.get("cfg", {}), "cfg"),
        cfg_given=frozenset(data.get("cfg", {})),
        raw_sections={k: dict(v) for k, v in data.items() if k not in CORE_SECTIONS},
    )


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    # resolved once per class: a simulation converts the same sections for every node
    return typing.get_type_hints(cls)


def convert(cls: type[T], values: Mapping[str, Any], section: str) -> T:
    """Validate ``values`` against attrs class ``cls``; errors name ``section.key``."""
    hints = _type_hints(typing.cast(Any, cls))
    known = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type, misc]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            choices = ", ".join(sorted(known))
            raise ConfigError(f"unknown config key {section}.{key} (known: {choices})")
        kwargs[key] = _check(hints[key], value, f"{section}.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{section}]: {validator_message(exc)}") from None


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is None and isinstance(getattr(tp, "__name__", None), str):
        return str(tp.__name__)
    return str(tp).replace("typing.", "")  # dict[str, int], not just dict


def _check(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            if arm is type(None):
                if value is None or (isinstance(value, FromText) and value.text == ""):
                    return None
                continue
            try:
                return _check(arm, value, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        return _literal(tp, value, key)
    if isinstance(value, FromText):
        return _from_text(tp, value, key)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list of {_type_name(item)}, got {value!r}")
        return [_check(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        return _tuple(tp, value, key)
    if origin is dict:
        key_type, item = typing.get_args(tp) or (str, Any)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table of {_type_name(item)}, got {value!r}")
        return {_check(key_type, k, f"{key} key {k!r}"): _check(item, v, f"{key}.{k}")
                for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if tp is Any:
        return value
    _supported(tp, key)
    if issubclass(tp, enum.Enum) and not isinstance(value, tp):
        return _enum(tp, value, key)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is Path and isinstance(value, str):
        return Path(value)
    if tp is str and isinstance(value, os.PathLike):  # data_dir=Path(...) in code
        value = os.fspath(value)
    if (tp is int and isinstance(value, bool)) or not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def check_section_class(cls: type, section: str) -> None:
    """Every field of a section class has an annotation ``convert`` can check — said at
    start, to the section's author, not once a user first sets the key."""
    try:
        hints = _type_hints(typing.cast(Any, cls))
    except NameError as exc:  # imported under TYPE_CHECKING only
        raise ConfigError(f"[{section}]: an annotation cannot be resolved ({exc}); import the "
                          "types a config section uses at run time") from None
    for field in attrs.fields(cls):  # type: ignore[arg-type, misc]
        if field.name not in hints:  # attrs.field() without an annotation
            raise ConfigError(f"{section}.{field.name}: the field has no type annotation")
        _check_annotation(hints[field.name], f"{section}.{field.name}")


def _check_annotation(tp: Any, key: str) -> None:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        for arm in typing.get_args(tp):
            if arm is not type(None) and arm is not Ellipsis:
                _check_annotation(arm, key)
    elif origin is not typing.Literal and tp is not Any:
        _supported(tp, key)


def _supported(tp: Any, key: str) -> None:
    """A plain class can be checked with isinstance; any other annotation (``set[int]``,
    a Protocol's generic alias...) is the section's author's mistake, said as such."""
    if not isinstance(tp, type) or typing.get_origin(tp) is not None:
        raise ConfigError(
            f"{key}: type {_type_name(tp)} is not supported in a config section (use str, "
            "int, float, bool, Path, an Enum, Literal[...], list, tuple, dict or Optional)")


def _literal(tp: Any, value: Any, key: str) -> Any:
    choices = typing.get_args(tp)
    for choice in choices:
        if isinstance(value, FromText):
            if value.text.strip() == str(choice):
                return choice
        elif value == choice and type(value) is type(choice):  # 1 is not True
            return value
    shown = ", ".join(repr(c) for c in choices)
    got = value.text if isinstance(value, FromText) else value
    raise ConfigError(f"{key}: expected one of {shown}, got {got!r}")


def _enum(tp: type[enum.Enum], value: Any, key: str) -> Any:
    try:
        return tp(value)
    except ValueError:
        shown = ", ".join(repr(m.value) for m in tp)
        raise ConfigError(f"{key}: expected one of {shown}, got {value!r}") from None


def _tuple(tp: Any, value: Any, key: str) -> tuple[Any, ...]:
    """``tuple[int, str]`` (that many items, each its type) or ``tuple[int, ...]``; TOML
    gives an array (a list), text gives comma-separated items."""
    args = typing.get_args(tp)
    if isinstance(value, FromText):
        value = [FromText(p.strip(), value.origin) for p in value.text.split(",") if p.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    elif len(value) != len(args):
        raise ConfigError(f"{key}: expected {len(args)} items ({_type_name(tp)}), got {value!r}")
    return tuple(_check(t, v, f"{key}[{i}]") for i, (t, v) in enumerate(zip(args, value, strict=True)))


def _from_text(tp: Any, value: FromText, key: str) -> Any:
    text = value.text.strip()
    where = f"{key} (from {value.origin})"
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp) or (str,)
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return [_check(item, FromText(p, value.origin), key) for p in parts]
    if typing.get_origin(tp) is tuple:
        return _tuple(tp, value, key)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp, value.text.strip(), where)
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"{where}: expected bool (true/false), got {text!r}")
    if tp in (int, float):
        try:
            number = tp(text)
        except ValueError:
            raise ConfigError(f"{where}: expected {tp.__name__}, got {text!r}") from None
        # NaN passes every "> 0" check and then fails where it is used, in a running node
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {text!r}")
        return number
    if tp is Path:
        return Path(text)
    if tp in (str, Any):
        return value.text
    raise ConfigError(f"{where}: values of type {_type_name(tp)} cannot be given as text")
