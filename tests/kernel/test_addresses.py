"""Addresses from people and peers: what a host may be, and names resolved once."""

import socket

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from p2pkit import ConfigError
from p2pkit.addresses import check_host, is_ip_literal, is_peer_address, parse_address, resolve


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.255", "::1", "fe80::1", "2001:db8::42"])
def test_ip_literals(host: str) -> None:
    assert is_ip_literal(host) and check_host(host) == host


@pytest.mark.parametrize(("host", "dialable"), [
    ("127.0.0.1", True), ("10.0.0.255", True), ("::1", True), ("192.168.1.7", True),
    ("255.255.255.255", False), ("224.0.0.251", False), ("ff02::1", False),  # everyone on a LAN
    ("0.0.0.0", False), ("::", False), ("localhost", False), ("a\x00b", False),
])
def test_what_a_peer_may_tell_us_to_dial(host: str, dialable: bool) -> None:
    assert is_peer_address(host) is dialable


@pytest.mark.parametrize("host", ["localhost", "seed.example.org", "xn--bcher-kva.example"])
def test_names_are_hosts_but_not_literals(host: str) -> None:
    assert not is_ip_literal(host) and check_host(host) == host


@pytest.mark.parametrize("text, why", [
    ("a\x00b:7700", "control or space"),     # sendto raised TypeError for it, at run time
    ("\u00e9" * 60 + ":7700", "IDNA"),        # and UnicodeError for this one
    ("two words:7700", "control or space"),
    ("x" * 254 + ":7700", "254 characters"),
    ("nowhere", "expected host:port"),
    ("peer:7\u00b2", "expected host:port"),  # str.isdigit() accepts '²', int() does not
    ("peer:0", "the port must be 1..65535"),
    ("127.0.0.1:99999", "the port must be 1..65535"),  # said "expected host:port"
    ("[]:7700", "expected host:port"),
])
def test_bad_addresses_are_config_errors_naming_the_value(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as caught:
        parse_address(text)
    assert repr(text)[:20] in str(caught.value)


def test_parse_address_keeps_names_and_strips_ipv6_brackets() -> None:
    assert parse_address(" seed.example.org:7700 ") == ("seed.example.org", 7700)
    assert parse_address("[::1]:7700") == ("::1", 7700)


async def test_resolve_leaves_literals_alone_and_resolves_names() -> None:
    assert await resolve(("10.1.2.3", 7)) == ("10.1.2.3", 7)
    host, port = await resolve(("localhost", 7700))
    assert is_ip_literal(host) and port == 7700


@pytest.mark.parametrize("host", ["a\x00b", "\u00e9" * 60, "no such host.invalid"])
async def test_a_host_that_cannot_be_resolved_is_an_oserror(host: str) -> None:
    with trio.fail_after(30), pytest.raises(socket.gaierror):
        await resolve((host, 7700))


@given(st.text(max_size=300))
def test_check_host_accepts_or_says_why(host: str) -> None:
    try:
        checked = check_host(host)
    except ValueError as exc:
        assert str(exc)
    else:  # anything accepted can go to a socket API without TypeError / UnicodeError
        assert checked == host and "\x00" not in host
        if not is_ip_literal(host):
            host.encode("idna")
