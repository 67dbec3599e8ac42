"""Streaming media uploads: multipart parsed as it arrives, written straight to disk.

The body is never held whole in memory: werkzeug's sans-IO multipart decoder is fed
64 KiB at a time and file data goes to a new file as it comes. The size limit is enforced
while streaming (413), the first bytes are sniffed as soon as they arrive (415 for
anything but audio, video or an image), and the client's file name is only ever used,
cleaned, as the *name* of a file inside a fresh random directory — never as a path.
"""

from __future__ import annotations

import secrets
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import attrs
import trio
from quart import request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from .errors import ApiError

FEED_BYTES = 64 * 1024
MAX_UNPARSED = 1024 * 1024  # a preamble or a part's headers, at most
MAX_TEXT_FIELD = 16 * 1024  # bytes of a title/description part
MAX_TEXT_CHARS = 4096
MAX_PARTS = 16
MAX_NAME_BYTES = 200
DRAIN_LIMIT = 64 * 1024 * 1024  # after an early refusal, read at most this much more


@attrs.define
class Upload:
    path: Path  # <uploads>/<random>/<clean name>
    size: int
    title: str | None
    description: str
    client_name: str


def unsupported_media_message(exc: Exception) -> str:
    """The 415's message: the store's own says what the file is not (and names it);
    anything else it raised gets that said around it."""
    text = str(exc)
    return text if "not an audio, video or image file" in text else \
        f"not an audio, video or image file ({text})"


def clean_name(client_name: str, fallback_ext: str = "") -> str:
    """A plain, printable file name derived from what the client sent (which may be a
    path, hold NUL or control characters, or be absurdly long)."""
    name = unicodedata.normalize("NFC", client_name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '\x00/\\:*?"<>|')
    name = name.strip().lstrip(".").strip()
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = ext[:16]
    budget = MAX_NAME_BYTES - len(ext.encode()) - 1
    stem = stem.encode()[:max(budget, 1)].decode("utf-8", "ignore").strip()
    if not stem:
        stem = "upload"
    if not ext and fallback_ext:
        ext = fallback_ext
    return f"{stem}.{ext}" if ext else stem


class UploadReceiver:
    """One multipart upload in progress."""

    def __init__(self, root: Path, max_bytes: int, sniff: Any, sniff_bytes: int) -> None:
        self._root = root
        self._max_bytes = max_bytes
        self._sniff = sniff  # the store's sniff(header, name) -> MediaType, raises if not media
        self._sniff_bytes = sniff_bytes  # how much of the file's start it needs
        self.dir = root / secrets.token_hex(12)
        self._texts: dict[str, str] = {}
        self._text_part: tuple[str, bytearray] | None = None
        self._file: Any = None
        self._file_name = ""
        self._file_seen = False
        self._header = bytearray()
        self._sniffed = False
        self._size = 0
        self._parts = 0
        self._path: Path | None = None

    async def receive(self) -> Upload:
        boundary = self._boundary()
        limit = self._max_bytes + 1024 * 1024  # multipart framing and text fields
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, f"upload larger than the limit of {self._max_bytes} bytes")
        # the decoder buffers what it cannot parse yet: a preamble or part headers that
        # never end would be held whole (file data is drained after every feed)
        decoder = MultipartDecoder(boundary.encode("latin-1"), MAX_UNPARSED, max_parts=MAX_PARTS)
        self.dir.mkdir(parents=True)
        received = 0
        try:
            try:
                async for chunk in request.body:
                    received += len(chunk)
                    if received > limit:
                        raise ApiError(413, f"upload larger than the limit of {self._max_bytes} bytes")
                    for i in range(0, len(chunk), FEED_BYTES):
                        try:
                            decoder.receive_data(chunk[i:i + FEED_BYTES])
                        except RequestEntityTooLarge:
                            raise ApiError(400, "malformed multipart body: more than "
                                           f"{MAX_UNPARSED} bytes without a part boundary "
                                           "or the end of a part's headers") from None
                        await self._drain(decoder)
                decoder.receive_data(None)
                await self._drain(decoder)
            except ApiError as exc:
                if exc.status != 413:
                    await _discard_rest(received)
                raise
            if not decoder.complete or self._file is not None:
                raise ApiError(400, "the multipart body ended early")
            if not self._file_seen or self._path is None:
                raise ApiError(422, "the form has no 'file' part", key="file")
            if self._size == 0:
                raise ApiError(400, "the file is empty", key="file")
            if not self._sniffed:
                self._check_media()
            return Upload(self._path, self._size, self._texts.get("title"),
                          self._texts.get("description", ""), self._file_name)
        except BaseException:
            if self._file is not None:
                await self._file.aclose()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _boundary(self) -> str:
        if request.mimetype != "multipart/form-data":
            raise ApiError(415, "expected a multipart/form-data body with a 'file' part")
        boundary = request.mimetype_params.get("boundary", "")
        if not 1 <= len(boundary) <= 70:
            raise ApiError(400, "multipart/form-data without a valid boundary")
        return boundary

    async def _drain(self, decoder: MultipartDecoder) -> None:
        while True:
            try:
                event = decoder.next_event()
            except ValueError as exc:  # malformed framing or too many parts
                raise ApiError(400, f"malformed multipart body: {exc}") from None
            if isinstance(event, NeedData | Epilogue):
                return
            if isinstance(event, File):
                await self._start_file(event)
            elif isinstance(event, Field):
                self._parts += 1
                self._text_part = (event.name, bytearray())
            elif isinstance(event, Data):
                await self._data(event)

    async def _start_file(self, event: File) -> None:
        if event.name != "file":
            raise ApiError(400, f"unexpected file part {event.name[:64]!r} (only 'file')")
        if self._file_seen:
            raise ApiError(400, "only one file per upload")
        self._file_seen = True
        self._file_name = event.filename or ""
        self._path = self.dir / clean_name(self._file_name)
        self._file = await trio.open_file(self._path, "xb")

    async def _data(self, event: Data) -> None:
        if self._text_part is not None:
            name, buf = self._text_part
            buf += event.data
            if len(buf) > MAX_TEXT_FIELD:
                raise ApiError(422, f"form field {name[:64]!r} is too long", key=name[:64])
            if not event.more_data:
                self._text_part = None
                if name in ("title", "description"):
                    self._texts[name] = self._text(name, bytes(buf))
            return
        if self._file is None:
            return
        self._size += len(event.data)
        if self._size > self._max_bytes:
            raise ApiError(413, f"upload larger than the limit of {self._max_bytes} bytes")
        if not self._sniffed:
            self._header += event.data[: self._sniff_bytes - len(self._header)]
            if len(self._header) >= self._sniff_bytes:
                self._check_media()
        await self._file.write(event.data)
        if not event.more_data:
            await self._file.aclose()
            self._file = None

    @staticmethod
    def _text(name: str, raw: bytes) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(422, f"form field {name!r} is not UTF-8", key=name) from None
        if "\x00" in text:
            raise ApiError(422, f"form field {name!r} contains NUL", key=name)
        if len(text) > MAX_TEXT_CHARS:
            raise ApiError(422, f"form field {name!r} is longer than {MAX_TEXT_CHARS} characters", key=name)
        return text.strip()

    def _check_media(self) -> None:
        self._sniffed = True
        try:
            media = self._sniff(bytes(self._header), self._file_name)
        except Exception as exc:  # the store's UnsupportedMedia (or its ValueError)
            raise ApiError(415, unsupported_media_message(exc), key="file") from None
        self.category = media.category
        self.mime = media.mime


async def _discard_rest(already: int) -> None:
    """Read (and drop) the rest of a refused body so the client sees our answer instead of
    a reset connection — within reason."""
    seen = already
    with trio.move_on_after(30):
        async for chunk in request.body:
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                return


def sweep_orphans(root: Path, keep: set[str], busy: set[Path]) -> int:
    """Delete upload directories whose file is no longer shared (``keep``: source paths)."""
    removed = 0
    if not root.is_dir():
        return 0
    for entry in root.iterdir():
        if not entry.is_dir() or entry in busy:
            continue
        if not any(str(p) in keep for p in entry.iterdir()):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
