import functools
from typing import Any

import pytest

from p2pkit import PluginError
from p2pkit.demux import Demultiplexer
from p2pkit.endpoint import Datagram


def test_routes_by_first_byte_in_order() -> None:
    demux = Demultiplexer()
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    demux.register([0x00, 0x01], lambda batch, now: got["a"].extend(d for d, _ in batch))
    demux.register([0x52], lambda batch, now: got["b"].extend(d for d, _ in batch))
    addr = ("127.0.0.1", 1)
    demux.dispatch([(b"\x00x", addr), (b"R1", addr), (b"\x01y", addr), (b"R2", addr)], 0.0)
    assert got == {"a": [b"\x00x", b"\x01y"], "b": [b"R1", b"R2"]}


def test_unclaimed_and_empty_datagrams_are_counted() -> None:
    demux = Demultiplexer()
    demux.dispatch([(b"", ("h", 1)), (b"\xff", ("h", 1))], 0.0)
    assert demux.unclaimed == 2


def test_a_failing_handler_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    demux = Demultiplexer()
    seen: list[Datagram] = []

    def broken(batch: list[Datagram], now: float) -> None:
        raise RuntimeError("boom")

    demux.register([0x01], broken)
    demux.register([0x02], lambda batch, now: seen.extend(batch))
    demux.dispatch([(b"\x01", ("h", 1)), (b"\x02", ("h", 1))], 0.0)
    demux.dispatch([(b"\x02", ("h", 1))], 0.0)
    assert demux.handler_errors == 1
    assert len(seen) == 2


def test_two_handlers_for_one_byte_is_an_error() -> None:
    demux = Demultiplexer()
    demux.register([0x10], lambda b, n: None)
    with pytest.raises(PluginError, match="0x10"):
        demux.register([0x10], lambda b, n: None)
    with pytest.raises(PluginError):
        demux.register([256], lambda b, n: None)


class Handlers:
    async def method(self, batch: list[Datagram], now: float) -> None:
        pass

    async def __call__(self, batch: list[Datagram], now: float) -> None:
        pass


async def _async_handler(batch: list[Datagram], now: float) -> None:
    pass


@pytest.mark.parametrize("handler", [
    _async_handler, Handlers().method, Handlers(), functools.partial(_async_handler)])
def test_an_async_handler_is_refused_when_registered(handler: Any) -> None:
    # it was called and never awaited: every datagram lost, with one RuntimeWarning
    demux = Demultiplexer()
    with pytest.raises(PluginError, match="is async def"):
        demux.register([0x4C], handler)
    demux.dispatch([(b"\x4c", ("h", 1))], 0.0)
    assert demux.unclaimed == 1


def test_a_failing_handler_logs_its_traceback_once_per_exception_type(
        caplog: pytest.LogCaptureFixture) -> None:
    # anyone can send datagrams: each failing batch was an ERROR traceback
    demux = Demultiplexer()

    def picky(batch: list[Datagram], now: float) -> None:
        raise (KeyError if batch[0][0] == b"\x41k" else ValueError)("garbage")

    def other(batch: list[Datagram], now: float) -> None:
        raise ValueError("garbage")

    demux.register([0x41], picky)
    demux.register([0x42], other)
    for _ in range(100):
        demux.dispatch([(b"\x41x", ("h", 1))], 0.0)
    demux.dispatch([(b"\x41k", ("h", 1))], 0.0)
    demux.dispatch([(b"\x42", ("h", 1))], 0.0)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [(r.exc_info[0] if r.exc_info else None) for r in errors] == [ValueError, KeyError, ValueError]
    assert demux.handler_errors == 102
