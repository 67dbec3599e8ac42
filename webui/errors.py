"""Every error the API returns is JSON: ``{"error": name, "message": text, ...}``.

Handlers registered here turn werkzeug's HTTP exceptions (404, 405, 413, ...), our own
:class:`ApiError` and any unexpected exception into that shape, with the right status.
A full disk (ENOSPC, EDQUOT, EFBIG, SQLite's "database or disk is full") is 507
``insufficient_storage`` saying so, wherever a request ran into it.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import trio
from quart import Quart, jsonify
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from p2pkit._exceptions import NodeStateError
from p2pkit.diskerrors import DiskProblem, classify, is_disk_full, problem_message

log = logging.getLogger("p2pkit.webui")

_NAMES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 410: "gone", 413: "payload_too_large",
    415: "unsupported_media_type", 416: "range_not_satisfiable", 422: "invalid", 500: "internal_error",
    503: "unavailable", 507: "insufficient_storage",
}


class ApiError(Exception):
    """An error to report to the client as JSON with ``status``; ``key`` names the
    offending request field when there is one."""

    def __init__(self, status: int, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.key = key

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": _NAMES.get(self.status, "error"), "message": self.message}
        if self.key is not None:
            out["key"] = self.key
        return out


def error_response(status: int, message: str, **extra: Any) -> ResponseReturnValue:
    return jsonify({"error": _NAMES.get(status, "error"), "message": message, **extra}), status


def disk_full_message(exc: BaseException) -> str:
    """What a request that ran out of disk is told (the 507's message)."""
    return f"the disk holding this node's data is full ({exc}); free some space and try again"


def install_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def _api_error(exc: ApiError) -> ResponseReturnValue:
        if exc.status == 413:  # the rest of the body was not read: this connection is done
            return jsonify(exc.body()), exc.status, {"Connection": "close"}
        return jsonify(exc.body()), exc.status

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = "the request body is larger than this server accepts"
            return jsonify({"error": _NAMES[413], "message": message}), 413, {"Connection": "close"}
        # the headers werkzeug's own response would carry: a 405's Allow, a 416's
        # Content-Range: bytes */SIZE — the body is ours, so not its Content-Type
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return jsonify({"error": _NAMES.get(status, "error"), "message": message}), status, headers

    @app.errorhandler(NodeStateError)
    async def _node_not_running(exc: NodeStateError) -> ResponseReturnValue:
        # a page's request while the node takes its leave of its peers (it used to be
        # a 500 with a traceback at every stop with a page open)
        return error_response(503, str(exc))

    @app.errorhandler(OSError)
    async def _os_error(exc: OSError) -> ResponseReturnValue:
        if is_disk_full(exc):
            log.warning("a request found no room: %s", exc)
            return error_response(507, disk_full_message(exc))
        return await _unexpected(exc)

    @app.errorhandler(sqlite3.Error)
    async def _database_error(exc: sqlite3.Error) -> ResponseReturnValue:
        # the history, the peers switched off...: SQLite in the data directory
        problem = classify(exc)
        if problem is DiskProblem.UNUSABLE or problem is DiskProblem.FULL:
            message = problem_message("this node's database", exc)
            log.warning("a request could not write: %s", message)
            return error_response(507 if problem is DiskProblem.FULL else 503, message)
        return await _unexpected(exc)

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error in a web request")
        return error_response(500, f"internal error: {type(exc).__name__}")


UPLOAD_ROUTE = ("POST", "/api/files")
MAX_OTHER_BODY = 64 * 1024
DRAIN_BYTES = 1024 * 1024  # a refused request's body awaited up to this size...
DRAIN_SECONDS = 5.0  # ...and this long


def install_body_limit(app: Quart) -> None:
    """Only the upload route takes large bodies; anything else declaring more is refused
    before Quart buffers it.

    A refusal may be ready before the request's body has arrived (a foreign Origin, not
    multipart, a bad token...). hypercorn then closes the connection from the request's
    own task, which the app cancels once the response is out: the socket stayed open,
    unread, and the client's next request on that kept-alive connection got no answer,
    ever. So a refused request's body is awaited first (up to ``DRAIN_BYTES``, for at
    most ``DRAIN_SECONDS``) and the connection lives on; a larger one is answered with
    ``Connection: close``."""
    from quart import Response, request

    @app.after_request
    async def _settle_a_refused_body(response: Response) -> Response:
        declared = request.content_length
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if response.status_code < 400 or not (declared or chunked):
            return response
        if declared is not None and declared <= DRAIN_BYTES:
            with trio.move_on_after(DRAIN_SECONDS):
                try:
                    await request.body  # what arrives is buffered by Quart anyway
                except HTTPException:  # larger than it said: nothing more to wait for
                    pass
                else:
                    request.body.clear()
                    return response
        response.headers["Connection"] = "close"
        return response

    @app.before_request
    async def _limit_body() -> ResponseReturnValue | None:
        length = request.content_length
        if length is not None and length > MAX_OTHER_BODY and (request.method, request.path) != UPLOAD_ROUTE:
            return jsonify({"error": _NAMES[413], "message": f"request body is larger than {MAX_OTHER_BODY} bytes"}), \
                413, {"Connection": "close"}
        return None
