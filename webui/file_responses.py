"""File responses whose byte ranges stay inside the file.

quart-trio's file body takes a Range's last position as given: ``bytes=0-9999`` of a
9 344-byte file was answered ``Content-Range: bytes 0-9999/9344``, which players and
download managers take as a promise of bytes that never come. RFC 9110 §14.1.2: a last
position past the end means "to the end". An unsatisfiable range (the first position past
the end) is answered 416 with ``Content-Range: bytes */SIZE`` (§15.5.17) so a client
learns the size; a Range in another unit, unparseable, or of several parts is ignored
(§14.2): the whole file, 200.

Conditional requests are evaluated in §13.2.2's order — Quart's looked at the Range
first and answered a failed If-Match 412 *with the whole file*: If-Match (strong
comparison) or else If-Unmodified-Since → 412 with no body; If-None-Match (weak) or else
If-Modified-Since → 304; only then If-Range (a strong validator: a weak entity tag or
another date means "the whole file") and the Range.
"""

from __future__ import annotations

from typing import Any

from quart_trio.wrappers.response import TrioFileBody, TrioResponse
from werkzeug.datastructures import ETags
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_date, parse_etags, unquote_etag


class ClampedFileBody(TrioFileBody):
    async def make_conditional(self, begin: int, end: int | None,
                               max_partial_size: int | None = None) -> int:
        if begin < 0:  # a suffix range, "the last N bytes"
            begin = max(0, self.size + begin)
        end = self.size if end is None else min(end, self.size)
        if max_partial_size is not None:
            end = min(begin + max_partial_size, end)
        if begin >= end:
            raise RequestedRangeNotSatisfiable(length=self.size)
        self.begin, self.end = begin, end
        return self.size


def _strong_match(etags: ETags, current: str | None) -> bool:
    if etags.star_tag:
        return True
    if current is None:
        return False
    tag, weak = unquote_etag(current)
    return not weak and tag is not None and etags.is_strong(tag)


def _weak_match(etags: ETags, current: str | None) -> bool:
    if etags.star_tag:
        return True
    tag = unquote_etag(current)[0] if current is not None else None
    return tag is not None and etags.contains_weak(tag)


class FileResponse(TrioResponse):
    file_body_class = ClampedFileBody  # type: ignore[assignment]

    async def make_conditional(self, request: Any, accept_ranges: bool | str = False,
                               complete_length: int | None = None) -> FileResponse:
        if request.method not in ("GET", "HEAD"):
            return self
        headers = request.headers
        etag = self.headers.get("ETag")
        modified = parse_date(self.headers.get("Last-Modified"))
        if "If-Match" in headers:
            failed = not _strong_match(parse_etags(headers["If-Match"]), etag)
        else:
            since = parse_date(headers.get("If-Unmodified-Since"))
            failed = since is not None and modified is not None and modified > since
        if failed:
            return self._bodiless(412)
        if "If-None-Match" in headers:
            unchanged = _weak_match(parse_etags(headers["If-None-Match"]), etag)
        else:
            since = parse_date(headers.get("If-Modified-Since"))
            unchanged = since is not None and modified is not None and modified <= since
        if unchanged:
            return self._bodiless(304)
        if "If-Range" in headers and not self._if_range_holds(headers["If-Range"], etag, modified):
            return self  # the representation changed: the whole of it, 200
        ranges = "bytes" if accept_ranges is True else accept_ranges or None
        await self._process_range_request(request, complete_length, ranges)
        return self

    @staticmethod
    def _if_range_holds(value: str, etag: str | None, modified: Any) -> bool:
        value = value.strip()
        if value.startswith(('"', "W/")):
            return _strong_match(parse_etags(value), etag) and not value.startswith("W/")
        when = parse_date(value)
        return when is not None and modified is not None and when == modified

    def _bodiless(self, status: int) -> FileResponse:
        self.status_code = status
        self.set_data(b"")
        if status == 304:  # (§8.6: a 304's Content-Length would be the file's)
            del self.content_length
        return self

    def _is_range_request_processable(self, request: Any) -> bool:
        return True  # If-Range is decided in make_conditional

    async def _process_range_request(self, request: Any, complete_length: int | None = None,
                                     accept_ranges: str | None = None) -> bool:
        # RFC 9110 14.2: a Range in a unit we do not serve MUST be ignored, and one we
        # cannot parse or serve as one part (several ranges) may be: the whole file, 200
        # — Quart answered each of these 416, so a client got nothing
        asked = request.range
        if asked is None or asked.units != "bytes" or len(asked.ranges) != 1:
            return False
        return await super()._process_range_request(request, complete_length, accept_ranges)


__all__ = ["ClampedFileBody", "FileResponse"]
