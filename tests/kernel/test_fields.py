import pytest

from p2pkit import Field, FieldError, FieldRegistry, FieldType


def make_registry() -> tuple[FieldRegistry, dict[str, int]]:
    registry = FieldRegistry()
    state = {"limit": 10}

    def validate(value: int) -> None:
        if value < 0:
            raise ValueError("must be >= 0")

    registry.register(Field("cfg.limit", FieldType.INT, lambda: state["limit"],
                            setter=lambda v: state.__setitem__("limit", v), validate=validate))
    registry.register(Field("node.id", FieldType.STR, lambda: "abc"))
    return registry, state


def test_get_and_set_round_trip() -> None:
    registry, state = make_registry()
    assert registry.get("cfg.limit") == 10
    assert registry.set("cfg.limit", 42) == 42
    assert state["limit"] == 42


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("node.id", "x", "read-only"),
        ("cfg.limit", "12", "expected int"),
        ("cfg.limit", True, "got bool"),
        ("cfg.limit", -1, "must be >= 0"),
        ("cfg.limit", 2**63, "64-bit"),
        ("nope", 1, "unknown field"),
    ],
)
def test_bad_sets_are_refused_and_change_nothing(name: str, value: object, message: str) -> None:
    registry, state = make_registry()
    with pytest.raises(FieldError, match=message):
        registry.set(name, value)
    assert state["limit"] == 10


def test_names_are_bounded_and_unique() -> None:
    with pytest.raises(FieldError, match=r"1\.\.32"):
        Field("x" * 33, FieldType.INT, lambda: 1)
    with pytest.raises(FieldError):
        Field("", FieldType.INT, lambda: 1)
    registry, _ = make_registry()
    with pytest.raises(FieldError, match="twice"):
        registry.register(Field("node.id", FieldType.STR, lambda: "y"))


def test_describe_lists_types_and_settability() -> None:
    registry, _ = make_registry()
    described = {d["name"]: d for d in registry.describe()}
    assert described["cfg.limit"]["settable"] is True
    assert described["node.id"] == {"name": "node.id", "type": "str", "settable": False,
                                    "description": ""}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_float_field_refuses_what_is_not_finite(value: float) -> None:
    # NaN passes a ">= 0" validator, and neither NaN nor inf is JSON (the web UI, ctl)
    state = {"rate": 1.0}
    registry = FieldRegistry()
    registry.register(Field("cfg.rate", FieldType.FLOAT, lambda: state["rate"],
                            setter=lambda v: state.__setitem__("rate", v)))
    with pytest.raises(FieldError, match="finite"):
        registry.set("cfg.rate", value)
    assert state["rate"] == 1.0 and registry.set("cfg.rate", 2) == 2.0
