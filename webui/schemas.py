"""Request bodies as msgspec structs, and a bounded JSON reader that validates them.

Malformed JSON is a 400; JSON of the wrong shape is a 422 naming the offending key.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from quart import request

from p2pkit.rids import RID_PATTERN, parse_rid

from .errors import ApiError

T = TypeVar("T")
MAX_JSON_BYTES = 64 * 1024
# capitals are taken (a rid copied from anywhere) and lowered, as `p2pkit get` does
Rid = Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F]{64}$")]


def check_rid(rid: str) -> str:
    """A rid from the URL path, lowered: 422 naming the pattern if it is not one (not a
    404: no file could ever have that name)."""
    try:
        return parse_rid(rid)
    except ValueError:
        raise ApiError(422, f"rid must match {RID_PATTERN}", key="rid") from None
_PATH_RE = re.compile(r"at `\$\.([A-Za-z0-9_]+)")


class _WithRid(msgspec.Struct, forbid_unknown_fields=True):
    rid: Rid

    def __post_init__(self) -> None:
        self.rid = self.rid.lower()


class DownloadRequest(_WithRid, forbid_unknown_fields=True):
    pass


class HistoryCreate(_WithRid, forbid_unknown_fields=True):
    kind: Literal["view", "download"] = "view"
    # absent (None): "" and 0 for a new entry, what the entry had for a repeated view
    title: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    position: Annotated[float, msgspec.Meta(ge=0, le=1e9)] | None = None
    duration: Annotated[float, msgspec.Meta(ge=0, le=1e9)] | None = None


class PeerToggle(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool | None = None  # absent: flip


async def read_body(limit: int = MAX_JSON_BYTES) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes without buffering them."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"request body is larger than {limit} bytes")
    data = bytearray()
    async for chunk in request.body:
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
    return bytes(data)


def decode_json(data: bytes, type_: type[T]) -> T:
    """Decode ``data`` as ``type_``: 400 if not JSON, 422 (naming the key) if the wrong shape."""
    try:
        raw = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec: RecursionError past its depth limit
        raise ApiError(400, f"malformed JSON: {exc}") from None
    try:
        return msgspec.convert(raw, type_)
    except msgspec.ValidationError as exc:
        match = _PATH_RE.search(str(exc))
        key = match.group(1) if match else _unknown_key(str(exc))
        if key == "rid" and "regex" in str(exc):  # as a rid in the URL path is answered
            raise ApiError(422, f"rid must match {RID_PATTERN}", key="rid") from None
        raise ApiError(422, str(exc), key=key) from None


def _unknown_key(message: str) -> str | None:
    found = re.search(r"unknown field `([^`]*)`", message) or re.search(
        r"missing required field `([^`]*)`", message)
    return found.group(1) if found else None


async def read_json(type_: type[T], *, allow_empty: bool = False) -> T:
    data = await read_body()
    # a JSON body must say so: a form or text/plain is what another site's page can send
    # without asking (no CORS preflight) — the Origin check is then not the only defence
    if data.strip() and request.mimetype != "application/json":
        raise ApiError(415, f"expected Content-Type: application/json, got {request.mimetype or 'none'!r:.80}")
    if allow_empty and not data.strip():
        data = b"{}"
    return decode_json(data, type_)


async def read_json_object() -> dict[str, Any]:
    """A JSON object of any keys (the caller validates them one by one)."""
    raw = await read_json(dict[str, Any])
    return raw
