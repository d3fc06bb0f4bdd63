"""What keeps `reidkit serve` safe to run beside images of people: who may write, how big a request may be,
which hosts a browser may reach it under, and the headers every response carries.

- Bound to a loopback address by default. Bound elsewhere without a token, it warns and refuses every write.
- With a token, adding and deleting need `Authorization: Bearer TOKEN` (compared in constant time).
- A request body is read into memory up to `max_body` bytes; past that the request is answered 413.
- Requests whose Origin is another site are refused for every method but GET / HEAD (no cross-site form posts),
  and a loopback server answers only to loopback host names (no DNS rebinding).
- CORS stays off unless origins are named; every response says nosniff, no-referrer, no-store (API and images)
  and a Content-Security-Policy that lets the page load only its own files.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_UPLOAD_MB = 10.0
DEFAULT_MAX_PIXELS = 25_000_000
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# The rest of an oversized body is read (and dropped) up to this many times the limit, so that the client
# gets its 413 instead of a reset connection; a body larger still is cut off.
_DRAIN_FACTOR = 8
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Swagger UI (/docs) starts itself with an inline script.
DOCS_POLICY = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); a name or wildcard (0.0.0.0) is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeSettings:
    """host: the address bound; token: the bearer token of the write endpoints (None: none set);
    max_upload_bytes: the largest request body; max_pixels: the largest decoded image (width x height);
    cors_origins: origins allowed to call the API from other sites (empty: CORS off);
    threshold: same-person cosine threshold shown on the page (None: the model's calibrated one)."""
    host: str = "127.0.0.1"
    token: str | None = None
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 2**20)
    max_pixels: int = DEFAULT_MAX_PIXELS
    cors_origins: tuple[str, ...] = ()
    threshold: float | None = None
    allowed_hosts: tuple[str, ...] = field(default=())

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def write_policy(self) -> str:
        """"token" (writes need the token), "open" (loopback without a token) or "refused" (bound beyond
        loopback without a token)."""
        if self.token:
            return "token"
        return "open" if self.loopback else "refused"

    def host_names(self) -> list[str]:
        """Host header names accepted: loopback names for a loopback server, any otherwise (unless given)."""
        if self.allowed_hosts:
            return list(self.allowed_hosts)
        return list(LOOPBACK_NAMES) if self.loopback else ["*"]

    def exposure_warning(self) -> str | None:
        if self.loopback or self.token:
            return None
        return (f"serving on {self.host} without --token: anyone who can reach this address can search these "
                "images of people; adding and deleting are refused (set --token to allow them)")


def write_refusal(settings: ServeSettings, authorization: str | None) -> tuple[int, str] | None:
    """(status, message) refusing a write, or None when it may go ahead."""
    policy = settings.write_policy
    if policy == "open":
        return None
    if policy == "refused":
        return 403, (f"writes are refused: the server is bound to {settings.host} without a token "
                     "(restart it with --token to allow adding and deleting)")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), settings.token.encode()):
        return 401, "this endpoint needs the header 'Authorization: Bearer <token>' with the server's --token"
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def send_json(send: Send, status: int, message: str, extra_headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *(extra_headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: reads a request's body (at most `limit` bytes) before the app sees it and answers a
    longer one 413, whatever its Content-Length says (the multipart parser would spool any size to disk)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared is not None and not declared.strip().isdigit():
            return await send_json(send, 400, f"Content-Length {declared!r}: expected a number of bytes")
        too_big = declared is not None and int(declared) > self.limit
        chunks: list[bytes] = []
        if not (too_big and int(declared) > self.limit * _DRAIN_FACTOR):
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                size += len(message.get("body", b""))
                too_big = too_big or size > self.limit
                if not too_big:
                    chunks.append(message.get("body", b""))
                if not message.get("more_body") or size > self.limit * _DRAIN_FACTOR:
                    break
        if too_big:
            return await send_json(send, 413, f"the request is over the upload limit of {self.limit / 2**20:g} "
                                   "MB (reidkit serve --max-upload-mb)")
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replayed() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return await receive()  # after the body: wait for the client to disconnect
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _host_name(host: str) -> str:
    """The name in a Host header, without its port ("[::1]:8000" -> "::1")."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class RequestGuard:
    """ASGI middleware. Host: only the names in `hosts` ("*": any), so that a web page cannot reach a loopback
    server under a name of its own that resolves to 127.0.0.1 (DNS rebinding). Origin: a request that submits
    something (any method but GET / HEAD / OPTIONS) from another site is refused 403 unless that origin was
    allowed (--cors-origin): without this, any page open in the user's browser could post forms to localhost."""

    def __init__(self, app: ASGIApp, hosts: list[str], allowed_origins: tuple[str, ...] = ()) -> None:
        self.app, self.hosts, self.allowed = app, {h.lower() for h in hosts}, set(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = _header(scope, b"host") or ""
        if "*" not in self.hosts and _host_name(host).lower() not in self.hosts:
            return await send_json(send, 400, f"Host {host!r} refused: this server answers to "
                                   f"{', '.join(sorted(self.hosts))}")
        origin = _header(scope, b"origin")
        if (scope["method"] not in ("GET", "HEAD", "OPTIONS") and origin is not None and origin not in self.allowed
                and urlsplit(origin).netloc != host):
            return await send_json(send, 403, f"cross-site request from {origin} refused (the page must be served "
                                   "by this server, or the origin allowed with --cors-origin)")
        await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: the headers of every response (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        policy = DOCS_POLICY if scope["path"].startswith("/docs") else PAGE_POLICY
        extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                 (b"x-frame-options", b"DENY"), (b"content-security-policy", policy.encode()),
                 (b"cache-control", b"no-store")]

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)
