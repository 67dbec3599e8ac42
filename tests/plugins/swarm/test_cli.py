"""``p2pkit get``'s last word when a download cannot finish in time: what its missing
blocks were waiting for (the end-to-end run is in tests/e2e/test_swarm_e2e.py)."""

from __future__ import annotations

from typing import Any

from p2pkit.plugins.swarm._cli import waiting_for


def report(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"missing_blocks": 0, "requested": 0, "requested_from": {},
                            "askable": {"ready": 0, "backing_off": 0, "pipelines_full": 0},
                            "only_choking_peers": 0, "nobody": 0, "peers": {}}
    return {**base, **fields}


def test_blocks_asked_of_a_slow_peer_are_named_as_such() -> None:
    line = waiting_for(report(missing_blocks=12, requested=12, requested_from={"p" * 64: 12}))
    assert line == "; 12 blocks missing: 12 asked of 1 peer(s)"


def test_every_reason_present_is_told_and_absent_ones_are_not() -> None:
    line = waiting_for(report(
        missing_blocks=30, requested=5, requested_from={"a": 3, "b": 2},
        askable={"ready": 0, "backing_off": 4, "pipelines_full": 1},
        only_choking_peers=15, nobody=5))
    assert line == ("; 30 blocks missing: 5 asked of 2 peer(s), 5 held by peers that unchoke"
                    " us, not asked yet, 15 held only by peers that choke us, 5 offered by no"
                    " peer yet")
    assert "choke" not in waiting_for(report(missing_blocks=3, nobody=3))


def test_nothing_is_added_without_a_download_or_with_nothing_missing() -> None:
    assert waiting_for(None) == ""
    assert waiting_for(report()) == ""
