"""A model of the whole store (resources, downloads, pins, limit, restarts) checked
against the real one after every step by hypothesis."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from p2pkit.plugins.store import Manifest, Store, StoreFullError

PIECE = 16 * 1024


def make_content(seed: int, pieces: int) -> tuple[Manifest, bytes]:
    data = hashlib.sha256(str(seed).encode()).digest() * (PIECE * pieces // 32 - seed)
    hashes = tuple(hashlib.sha256(data[i:i + PIECE]).digest() for i in range(0, len(data), PIECE))
    m = Manifest(name=f"c{seed}.mp4", size=len(data), mime="video/mp4", category="video",
                 piece_size=PIECE, piece_hashes=hashes)
    return m, data


CONTENTS = [make_content(1, 3), make_content(2, 5)]


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="p2pkit-stateful-"))
        self.limit: int | None = None
        self.store = Store(self.dir, piece_size=PIECE, volatile=True)
        self.objects: dict[str, tuple[bytes, bool]] = {}
        self.content: dict[int, tuple[set[int], bool]] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def _sync_evictions(self, spared: tuple[str, object] | None = None) -> None:
        """Forget what the store evicted; pinned items and ``spared`` must never go."""
        for sid, (_, pinned) in list(self.objects.items()):
            if not self.store.exists(sid):
                assert not pinned and spared != ("sid", sid), f"{sid} wrongly evicted"
                del self.objects[sid]
        for k, (have, pinned) in list(self.content.items()):
            if CONTENTS[k][0].rid not in self.store:
                assert not pinned and spared != ("content", k), f"content {k} wrongly evicted"
                assert have, "content without stored bytes is never evicted"
                del self.content[k]

    # ------------------------------------------------------------------ resources

    @rule(sid=st.sampled_from(["a", "b", "c", "../d"]), pinned=st.booleans())
    def create(self, sid: str, pinned: bool) -> None:
        self.store.create(sid, pinned=pinned)
        self.objects[sid] = (b"", pinned)

    @rule(sid=st.sampled_from(["a", "b", "c", "../d"]), data=st.binary(max_size=20000))
    def append(self, sid: str, data: bytes) -> None:
        if sid not in self.objects:
            return
        try:
            self.store.append(sid, data)
        except StoreFullError:
            self._sync_evictions(spared=("sid", sid))
            return
        old, pinned = self.objects[sid]
        self.objects[sid] = (old + data, pinned)
        self._sync_evictions(spared=("sid", sid))
        assert self.limit is None or not data or self.store.used_bytes <= self.limit

    @rule(sid=st.sampled_from(["a", "b", "c", "../d"]))
    def delete(self, sid: str) -> None:
        assert self.store.delete(sid) is (sid in self.objects)
        self.objects.pop(sid, None)

    # ------------------------------------------------------------------ content

    @rule(k=st.sampled_from([0, 1]))
    def begin(self, k: int) -> None:
        try:
            began = self.store.begin_download(CONTENTS[k][0])
        except StoreFullError:
            assert k not in self.content
            return
        assert began is (k not in self.content)
        self.content.setdefault(k, (set(), False))

    @rule(k=st.sampled_from([0, 1]), index=st.integers(0, 4), corrupt=st.booleans())
    def write_piece(self, k: int, index: int, corrupt: bool) -> None:
        if k not in self.content:
            return
        m, data = CONTENTS[k]
        piece = data[index * PIECE:(index + 1) * PIECE]
        if corrupt and piece:
            piece = bytes([piece[0] ^ 1]) + piece[1:]
        try:
            ok = self.store.write_piece(m.rid, index, piece)
        except StoreFullError:
            self._sync_evictions(spared=("content", k))
            return
        assert ok is (index < m.num_pieces and not corrupt)
        added = ok and index not in self.content[k][0]
        if ok:
            self.content[k][0].add(index)
        self._sync_evictions(spared=("content", k))
        # A write that stored new bytes fits under the limit; re-writing a piece already
        # held adds nothing, so pinned content above a lowered limit may stay above it.
        assert self.limit is None or self.store.used_bytes <= self.limit or not added

    @rule(k=st.sampled_from([0, 1]), pinned=st.booleans())
    def pin(self, k: int, pinned: bool) -> None:
        if k in self.content:
            self.store.pin_content(CONTENTS[k][0].rid, pinned)
            self.content[k] = (self.content[k][0], pinned)

    @rule(k=st.sampled_from([0, 1]))
    def remove(self, k: int) -> None:
        assert self.store.remove(CONTENTS[k][0].rid) is (k in self.content)
        self.content.pop(k, None)

    # ------------------------------------------------------------------ limit, restart

    @rule(limit=st.one_of(st.none(), st.integers(0, 120_000)))
    def set_limit(self, limit: int | None) -> None:
        self.limit = limit
        self.store.set_storage_limit(limit)
        self._sync_evictions()

    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = Store(self.dir, piece_size=PIECE, limit_bytes=self.limit, volatile=True)

    @precondition(lambda self: self.limit is not None)
    @rule()
    def evict_everything_possible(self) -> None:
        self.store.evict_until(10**9)
        self._sync_evictions()
        assert all(p for _, p in self.objects.values())
        assert all(p or not have for have, p in self.content.values())

    # ------------------------------------------------------------------ invariants

    @invariant()
    def matches_the_model(self) -> None:
        s = self.store
        assert {o.sid for o in s.objects()} == set(self.objects)
        assert {i.rid for i in s.items()} == {CONTENTS[k][0].rid for k in self.content}
        expected = sum(len(d) for d, _ in self.objects.values())
        for sid, (data, pinned) in self.objects.items():
            assert s.read(sid, 0, 10**6) == data
            assert any(o.sid == sid and o.pinned == pinned for o in s.objects())
        for k, (have, _pinned) in self.content.items():
            m, data = CONTENTS[k]
            assert set(range(m.num_pieces)) - set(s.missing_pieces(m.rid)) == have
            expected += sum(m.piece_length(i) for i in have)
            for i in have:
                assert s.read_piece(m.rid, i) == data[i * PIECE:(i + 1) * PIECE]
        assert s.used_bytes == expected


StoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestStoreMachine = StoreMachine.TestCase
