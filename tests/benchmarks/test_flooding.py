"""The flooding benchmark on a small network: its JSON line says consistent things (the
figures it prints are docs/plugins/flooding.md's)."""

from __future__ import annotations

import json

import pytest

from benchmarks.flooding import main


def test_the_benchmark_compares_the_digest_sync_with_the_full_table_and_times_searches(
        capsys: pytest.CaptureFixture[str]) -> None:
    main(["--quick", "--nodes", "12"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["nodes"] == 12 and result["lists_held"] == 11  # every other node's list
    assert 0 < result["sync_bytes_per_session"] < result["full_sync_bytes_per_session"]
    # virtual seconds: the Done messages end a search before search_timeout
    assert 0 < result["search_unanswered_seconds"] < result["search_timeout_seconds"]
    assert result["search_answered_found"] == 1
