"""File responses whose byte ranges stay inside the file.

quart-trio's file body takes a Range's last position as given: ``bytes=0-9999`` of a
9 344-byte file was answered ``Content-Range: bytes 0-9999/9344``, which players and
download managers take as a promise of bytes that never come. RFC 9110 §14.1.2: a last
position past the end means "to the end". An unsatisfiable range (the first position past
the end) is answered 416 with ``Content-Range: bytes */SIZE`` (§15.5.17) so a client
learns the size; a Range in another unit, unparseable, or of several parts is ignored
(§14.2): the whole file, 200.
"""

from __future__ import annotations

from typing import Any

from quart_trio.wrappers.response import TrioFileBody, TrioResponse
from werkzeug.exceptions import RequestedRangeNotSatisfiable


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


class FileResponse(TrioResponse):
    file_body_class = ClampedFileBody  # type: ignore[assignment]

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
