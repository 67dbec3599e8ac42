import enum
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest

from p2pkit import ConfigError, NodeConfig, load_config
from p2pkit.config import parse_assignment


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p2pkit.toml"
    path.write_text(text)
    return path


def test_defaults_are_usable() -> None:
    config = NodeConfig()
    assert config.node.port == 7700
    assert config.cfg.p2p_enabled is True
    assert config.node.bootstrap == []


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, '[node]\nport = 1000\nprofile = "file"\nlog_level = "debug"\n')
    env = {"P2PKIT_NODE__PORT": "2000", "P2PKIT_NODE__PROFILE": "env"}
    config = load_config(path, env=env, overrides={"node": {"port": 3000}})
    assert config.node.port == 3000  # flag beats env beats file
    assert config.node.profile == "env"  # env beats file
    assert config.node.log_level == "debug"  # file beats default


def test_env_values_are_parsed_by_type() -> None:
    env = {
        "P2PKIT_NODE__BOOTSTRAP": "10.0.0.1:7700, 10.0.0.2:7700",
        "P2PKIT_CFG__P2P_ENABLED": "off",
        "P2PKIT_CFG__CACHE_LIMIT_MB": "512",
        "UNRELATED": "x",
    }
    config = load_config(env=env)
    assert config.node.bootstrap == ["10.0.0.1:7700", "10.0.0.2:7700"]
    assert config.cfg.p2p_enabled is False
    assert config.cfg.cache_limit_mb == 512


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[node]\nprot = 1\n", "unknown config key node.prot"),
        ('[node]\nport = "many"\n', "node.port: expected int"),
        ("[node]\nport = true\n", "node.port: expected int"),
        ('[cfg]\np2p_enabled = "yes"\n', "cfg.p2p_enabled: expected bool"),
        ("[node]\nbootstrap = [1, 2]\n", "node.bootstrap[0]: expected str"),
        ("node = 3\n", "must be a [section]"),
        ("[node\n", "p2pkit.toml"),
    ],
)
def test_bad_file_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(write(tmp_path, text), env={})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="P2PKIT_NODE__PORT"):
        load_config(env={"P2PKIT_NODE__PORT": "seven"})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml", env={})


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    # a UnicodeDecodeError traceback: the file had been saved as UTF-16
    path = tmp_path / "utf16.toml"
    path.write_bytes("[node]\nport = 7700\n".encode("utf-16"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path, env={})


@attrs.define
class DemoSection:
    rate: float = 1.0
    names: list[str] = attrs.field(factory=list)


def test_plugin_sections_are_validated_when_bound() -> None:
    config = NodeConfig.from_mapping({"demo": {"rate": 2, "names": ["a"]}})
    config.bind_sections({"demo": DemoSection})
    assert config.section("demo") == DemoSection(rate=2.0, names=["a"])
    with pytest.raises(ConfigError, match="unknown config section"):
        NodeConfig.from_mapping({"other": {}}).bind_sections({"demo": DemoSection})
    bad = NodeConfig.from_mapping({"demo": {"rate": "fast"}})
    with pytest.raises(ConfigError, match=r"demo\.rate: expected float"):
        bad.bind_sections({"demo": DemoSection})


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_a_number_that_is_not_finite_is_a_config_error(tmp_path: Path, text: str) -> None:
    # NaN passes every "> 0" check, then failed inside the running node (a NaN deadline)
    with pytest.raises(ConfigError, match=r"demo\.rate: expected a finite number"):
        NodeConfig.from_mapping({"demo": {"rate": float(text)}}).bind_sections({"demo": DemoSection})
    with pytest.raises(ConfigError, match=r"demo\.rate: expected a finite number"):
        load_config(write(tmp_path, f"[demo]\nrate = {text}\n"), env={}).bind_sections({"demo": DemoSection})
    with pytest.raises(ConfigError, match=r"P2PKIT_DEMO__RATE.*finite"):
        load_config(env={"P2PKIT_DEMO__RATE": text}).bind_sections({"demo": DemoSection})


def test_set_flag_syntax() -> None:
    section, key, value = parse_assignment("rudp.heartbeat_ms=500")
    assert (section, key, value.text) == ("rudp", "heartbeat_ms", "500")
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        parse_assignment("heartbeat_ms=500")


def test_data_dir_defaults_to_profile_dir_and_ephemeral_has_none(tmp_path: Path) -> None:
    config = NodeConfig.from_mapping({"node": {"profile": "alice"}})
    profile_dir = config.data_path()
    assert profile_dir is not None
    assert profile_dir.parts[-2:] == ("p2pkit", "alice")
    assert NodeConfig.from_mapping({"node": {"ephemeral": True}}).data_path() is None
    custom = NodeConfig.from_mapping({"node": {"data_dir": str(tmp_path)}})
    assert custom.data_path() == tmp_path


@pytest.mark.parametrize("port", [70000, -1])
def test_a_port_out_of_range_is_a_config_error_not_another_port(port: int) -> None:
    # 70000 used to bind port 4464 (70000 mod 65536) without a word
    with pytest.raises(ConfigError, match=r"node\.port"):
        NodeConfig.from_mapping({"node": {"port": port}})
    with pytest.raises(ConfigError, match=r"node\.port"):
        load_config(env={"P2PKIT_NODE__PORT": str(port)})


@pytest.mark.parametrize(("key", "value"), [
    ("max_connections", 0), ("cache_limit_mb", -5), ("upload_limit_kbps", -1),
    # past 64 bits once in bytes: store.limit_bytes could no longer be read
    ("cache_limit_mb", 2**63 - 1), ("upload_limit_kbps", 2**62), ("max_connections", 10**12)])
def test_cfg_defaults_are_validated_like_runtime_settings(key: str, value: int) -> None:
    from p2pkit.config import CfgSection
    from p2pkit.settings import Settings

    section: dict[str, Any] = {key: value}  # which field (and its type) is known at run time only
    with pytest.raises(ConfigError, match=rf"cfg\.{key}"):
        Settings(CfgSection(**section), None)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.define
class TypedSection:
    mode: Literal["fast", "safe"] = "safe"
    level: Literal[1, 2] = 1
    weights: dict[str, int] = attrs.field(factory=dict)
    size: tuple[int, int] = (1, 1)
    tags: tuple[str, ...] = ()
    colour: Colour = Colour.RED
    seen: set[int] = attrs.field(factory=set)


def _bind(values: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    config = load_config(env=env or {}, overrides={"typed": values} if values else None)
    config.bind_sections({"typed": TypedSection})
    return config.section("typed")


@pytest.mark.parametrize(("values", "env", "expected"), [
    ({"mode": "fast"}, None, {"mode": "fast"}),
    ({}, {"P2PKIT_TYPED__MODE": "fast"}, {"mode": "fast"}),
    ({"level": 2}, None, {"level": 2}),
    ({}, {"P2PKIT_TYPED__LEVEL": "2"}, {"level": 2}),
    ({"weights": {"a": 1, "b": 2}}, None, {"weights": {"a": 1, "b": 2}}),
    ({"size": [640, 480]}, None, {"size": (640, 480)}),
    ({}, {"P2PKIT_TYPED__SIZE": "640, 480"}, {"size": (640, 480)}),
    ({"tags": ["x", "y", "z"]}, None, {"tags": ("x", "y", "z")}),
    ({"colour": "blue"}, None, {"colour": Colour.BLUE}),
    ({}, {"P2PKIT_TYPED__COLOUR": "blue"}, {"colour": Colour.BLUE}),
])
def test_literal_dict_tuple_and_enum_fields_take_valid_values(
        values: dict[str, Any], env: dict[str, str] | None, expected: dict[str, Any]) -> None:
    section = _bind(values, env)
    assert {k: getattr(section, k) for k in expected} == expected


@pytest.mark.parametrize(("values", "env", "message"), [
    # each crashed with "TypeError: Subscripted generics cannot be used with class and
    # instance checks" on any value, valid or not
    ({"mode": "turbo"}, None, r"typed\.mode: expected one of 'fast', 'safe', got 'turbo'"),
    ({}, {"P2PKIT_TYPED__MODE": "turbo"}, r"typed\.mode: expected one of 'fast', 'safe'"),
    ({"level": True}, None, r"typed\.level: expected one of 1, 2, got True"),
    ({"weights": {"a": "heavy"}}, None, r"typed\.weights\.a: expected int, got str"),
    ({"weights": [1, 2]}, None, r"typed\.weights: expected a table of int"),
    ({}, {"P2PKIT_TYPED__WEIGHTS": "a=1"}, r"typed\.weights .*dict\[str, int\] cannot be given as text"),
    ({"size": [640]}, None, r"typed\.size: expected 2 items \(tuple\[int, int\]\)"),
    ({"size": [640, "tall"]}, None, r"typed\.size\[1\]: expected int"),
    ({"colour": "green"}, None, r"typed\.colour: expected one of 'red', 'blue', got 'green'"),
    ({"seen": [1]}, None, r"typed\.seen: type set\[int\] is not supported in a config section"),
])
def test_literal_dict_tuple_and_enum_fields_name_the_key_on_a_bad_value(
        values: dict[str, Any], env: dict[str, str] | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _bind(values, env)


def test_log_level_is_checked_by_the_config_not_only_the_cli() -> None:
    with pytest.raises(ConfigError, match=r"node\.log_level: expected one of debug, info"):
        NodeConfig.from_mapping({"node": {"log_level": "loud"}})
    assert NodeConfig.from_mapping({"node": {"log_level": "debug"}}).node.log_level == "debug"


def test_a_section_of_a_disabled_plugin_is_ignored_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    # one config file serves installs with and without a plugin: disabling it must not
    # make its section an error
    config = NodeConfig.from_mapping({"node": {"disable": ["flooding"]}, "flood": {"fanout": 3}})
    config.bind_sections({"demo": DemoSection})
    assert "config section [flood] is ignored" in caplog.text
    with pytest.raises(ConfigError, match="unknown config section"):
        NodeConfig.from_mapping({"flood": {"fanout": 3}}).bind_sections({"demo": DemoSection})


def test_a_path_object_is_taken_where_the_config_wants_a_path_as_text(tmp_path: Path) -> None:
    config = NodeConfig.from_mapping({"node": {"data_dir": tmp_path / "d", "repeater": tmp_path / "r"}})
    assert config.data_path() == tmp_path / "d"
    assert config.node.repeater == str(tmp_path / "r")


@attrs.define
class RangedSection:
    slots: int = attrs.field(default=2, validator=attrs.validators.in_(range(1, 9)))


def test_a_validator_s_complaint_is_shown_without_attrs_internals() -> None:
    config = NodeConfig.from_mapping({"ranged": {"slots": 9}})
    with pytest.raises(ConfigError) as caught:
        config.bind_sections({"ranged": RangedSection})
    assert str(caught.value) == "[ranged]: 'slots' must be in range(1, 9) (got 9)"
