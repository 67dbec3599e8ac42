"""Who may talk to the UI.

- Bound to loopback: no token, but the ``Host`` header must name this machine (defeats
  DNS rebinding) and a cross-site ``Origin`` is refused (defeats CSRF from other tabs).
- Bound to anything else: every request needs the access token, as ``Authorization:
  Bearer``, ``X-P2PKit-Token``, the ``p2pkit_token`` cookie, or once as ``?token=`` (a
  page then sets the cookie and redirects to the clean URL).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from quart import Quart, Response, redirect, request, websocket
from quart.typing import ResponseReturnValue

from .config import is_loopback
from .errors import error_response

COOKIE = "p2pkit_token"


def _host_only(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def install_access_checks(app: Quart, token: str | None, loopback_only: bool) -> None:
    def presented(headers: object, args: object, cookies: object) -> str:
        auth = headers.get("Authorization", "")  # type: ignore[attr-defined]
        if auth.lower().startswith("bearer "):
            return str(auth[7:].strip())
        return str(headers.get("X-P2PKit-Token")  # type: ignore[attr-defined]
                   or cookies.get(COOKIE)  # type: ignore[attr-defined]
                   or args.get("token")  # type: ignore[attr-defined]
                   or "")

    def refusal(host: str, origin: str | None, unsafe: bool, given: str) -> ResponseReturnValue | None:
        # localhost or any loopback address (all of 127/8: `--host 127.0.0.2` was refused its
        # own pages); any other name is how DNS rebinding would reach us
        if loopback_only and not is_loopback(_host_only(host)):
            return error_response(403, f"host {host[:100]!r} is not this machine")
        if origin and unsafe:
            try:
                netloc = urlsplit(origin).netloc
            except ValueError:  # "http://[::1": a 500 and a traceback, for a header anyone sends
                return error_response(403, f"malformed Origin header {origin[:100]!r}")
            if netloc.lower() != host.lower():
                return error_response(403, "cross-origin requests are not allowed")
        if token and not hmac.compare_digest(given.encode(), token.encode()):
            return error_response(401, "an access token is required (see the URL printed at start)")
        return None

    @app.before_request
    async def _check_request() -> ResponseReturnValue | None:
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
        denied = refusal(request.host, request.headers.get("Origin"), unsafe,
                         presented(request.headers, request.args, request.cookies))
        if denied is not None:
            return denied
        if token and "token" in request.args and request.method == "GET" \
                and not request.path.startswith("/api/"):
            # a ?token= link: remember it in a cookie and show the clean URL
            response: Response = redirect(request.path)  # type: ignore[assignment]
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
            return response
        return None

    @app.before_websocket
    async def _check_websocket() -> ResponseReturnValue | None:
        return refusal(websocket.host, websocket.headers.get("Origin"), True,
                       presented(websocket.headers, websocket.args, websocket.cookies))


CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")


def install_security_headers(app: Quart) -> None:
    """The UI only ever loads its own files; nothing may frame it (clickjacking)."""

    @app.after_request
    async def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Frame-Options"] = "DENY"
        return response
