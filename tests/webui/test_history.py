"""The history stays bounded (newest MAX_ENTRIES kept, pruned with each insert) and its
list endpoint refuses hostile query parameters with a clean 422, never a 500."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p2pkit.webui import WebConfig, WebUI
from p2pkit.webui.history import MAX_ENTRIES, MAX_PAGE, History
from quart_trio.testing import TrioClient

from p2pkit._exceptions import ConfigError
from p2pkit.node import open_node
from tests.fulldisk import FullDisk

from .conftest import node_config

RID = "ab" * 32


def test_the_newest_entries_are_kept() -> None:
    """Inserts in the same millisecond too: the latest inserted is the newest."""
    history = History(None)
    for i in range(MAX_ENTRIES + 5):
        history.add(RID, "download", f"e{i}")
        assert len(history) <= MAX_ENTRIES
    assert len(history) == MAX_ENTRIES
    titles = [e["title"] for e in history.list(MAX_PAGE)]
    assert titles == [f"e{i}" for i in range(MAX_ENTRIES + 4, 4, -1)]
    history.close()


def test_a_view_updated_in_place_is_recent_again_and_counts_once() -> None:
    history = History(None, max_entries=3)
    watched = history.add("cd" * 32, "view", "watched")
    for i in range(2):
        history.add(RID, "download", f"d{i}")
    again = history.add("cd" * 32, "view", "watched", position=12.0)
    assert again["id"] == watched["id"] and len(history) == 3
    history.add(RID, "download", "d2")  # pushes out d0, the oldest; the re-watched view stays
    assert [e["title"] for e in history.list()] == ["d2", "watched", "d1"]


def test_a_repeated_view_keeps_what_it_does_not_say() -> None:
    # the Search page's detail view posts {rid, kind} only: it reset the saved position to 0
    history = History(None)
    history.add(RID, "view", "My Clip", position=2.5, duration=3.0)
    again = history.add(RID, "view")
    assert (again["title"], again["position"], again["duration"]) == ("My Clip", 2.5, 3.0)
    moved = history.add(RID, "view", position=1.0)
    assert (moved["title"], moved["position"]) == ("My Clip", 1.0)
    fresh = history.add("cd" * 32, "view")
    assert (fresh["title"], fresh["position"]) == ("", 0.0)


def test_an_oversized_database_is_pruned_when_opened(tmp_path: Path) -> None:
    """A history written before the bound (or with a larger one) shrinks on open."""
    path = tmp_path / "webui.sqlite"
    big = History(path, max_entries=50)
    for i in range(50):
        big.add(RID, "download", f"e{i}")
    big.close()
    small = History(path, max_entries=10)
    assert [e["title"] for e in small.list()] == [f"e{i}" for i in range(49, 39, -1)]
    small.close()
    with sqlite3.connect(path) as db:  # on disk too, not just in what list() shows
        assert db.execute("SELECT count(*) FROM history").fetchone()[0] == 10


def test_history_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        History(None, max_entries=0)
    history = History(None)
    for limit in (0, -1, MAX_PAGE + 1):
        with pytest.raises(ValueError, match="limit"):
            history.list(limit)


BAD_LIMITS = ["0", "-1", "1001", "1.5", "", "abc", "+5", " 5", "5 ", "0x10", "1e3",
              "\u00b2", "\u0663", "\uff15", "9" * 5000, "1" * 7]


async def test_bad_limits_are_422_naming_the_key(client: TrioClient) -> None:
    for raw in BAD_LIMITS:
        response = await client.get("/api/history", query_string={"limit": raw})
        assert response.status_code == 422, raw
        assert (await response.get_json())["key"] == "limit"


async def test_a_page_is_at_most_max_page_entries(client: TrioClient, web: WebUI) -> None:
    for i in range(MAX_PAGE + 3):
        web.history.add(RID, "download", f"e{i}")
    page = (await (await client.get(f"/api/history?limit={MAX_PAGE}")).get_json())["history"]
    assert len(page) == MAX_PAGE and page[0]["title"] == f"e{MAX_PAGE + 2}"
    default = (await (await client.get("/api/history")).get_json())["history"]
    assert len(default) == 100
    one = (await (await client.get("/api/history?limit=1&kind=download")).get_json())["history"]
    assert [e["title"] for e in one] == [f"e{MAX_PAGE + 2}"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.text(max_size=30), st.one_of(st.none(), st.text(max_size=12))),
                min_size=1, max_size=10))
def test_any_query_gets_a_clean_answer(queries: list[tuple[str, str | None]]) -> None:
    async def run() -> None:
        async with open_node(node_config()) as node:
            ui = WebUI(node, WebConfig(http_port=0))
            await node.nursery.start(ui.run_background)
            client = ui.app.test_client()
            ui.history.add(RID, "view", "seen")
            for limit, kind in queries:
                args = {"limit": limit} if kind is None else {"limit": limit, "kind": kind}
                response = await client.get("/api/history", query_string=args)
                body = await response.get_json()
                if response.status_code == 200:
                    assert len(body["history"]) <= int(limit) <= MAX_PAGE
                else:
                    assert response.status_code == 422 and body["key"] in ("limit", "kind")
            node.nursery.cancel_scope.cancel()

    trio.run(run)


async def test_the_bound_is_the_web_sections_history_entries() -> None:
    async with open_node(node_config()) as node:
        web = WebUI(node, WebConfig(http_port=0, history_entries=3))
        for i in range(5):
            web.history.add(RID, "download", f"e{i}")
        assert [e["title"] for e in web.history.list()] == ["e4", "e3", "e2"]
        web.history.close()


def test_history_entries_must_be_positive_and_survive_the_flags() -> None:
    import argparse

    from p2pkit.webui.plugin import web_config

    with pytest.raises(ValueError, match="history_entries"):
        WebConfig(history_entries=0)
    flags = argparse.Namespace(http_host=None, http_port=8080, max_upload_mb=None, token=None)
    merged, _token = web_config(flags, WebConfig(history_entries=7))
    assert merged.history_entries == 7 and merged.http_port == 8080


def test_a_full_disk_is_not_a_damaged_history_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # "web UI database … is damaged (database or disk is full); move it away": the history
    # moved away for a full disk
    db = tmp_path / "webui.sqlite"
    kept = History(db)
    kept.add("ab" * 32, "download", "kept")
    kept.close()
    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **kw: FullDisk(real(*a, **kw), everything=True))
    with pytest.raises(ConfigError) as info:
        History(db)
    assert f"the disk holding the web UI database {db} is full" in str(info.value)
    assert "damaged" not in str(info.value) and "move it away" not in str(info.value)
    monkeypatch.undo()
    assert [e["title"] for e in History(db).list()] == ["kept"]
