"""The service's front door, as plain ASGI middleware (no per-request thread hops):

- API keys: `Authorization: Bearer <key>` compared in constant time against every configured
  key; the key is never logged or echoed. /health and /ready stay open for probes.
- Body size: a declared Content-Length over the limit is refused before reading; a body that
  grows past it while streaming is cut off with 413.
- Host header: only loopback names, the bound --host and --allowed-host values are accepted
  (421 otherwise), so a web page whose DNS name was rebound to 127.0.0.1 cannot drive the API
  from a victim's browser, and redirects never point at a host the client made up.
- Metrics: requests by route template and status, and their latency.
"""

from __future__ import annotations

import hmac
import time

from starlette.exceptions import HTTPException

from uniembed.serve.api_errors import envelope_bytes

OPEN_PATHS = {
    "/health",
    "/ready",
    "/",
}  # "/" and /page/*: the web page holds no data; its calls send the key
OPEN_PREFIXES = ("/page/",)


class Guard:
    def __init__(self, app, *, settings, metrics):
        self.app = app
        self.keys = [key.encode() for key in settings.api_keys]
        self.hosts = allowed_host_names(settings)  # None: any Host
        self.max_body = settings.max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                return await _respond(send_and_note, *refusal)
            await self.app(scope, self._limited(receive), send_and_note)
        finally:
            # the route's template (/v1/collections/{name}), never the raw path: bounded label values
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_request(
                scope["method"], template, status["code"], time.perf_counter() - started
            )

    def _refusal(self, scope) -> tuple | None:
        headers = dict(scope["headers"])
        if self.hosts is not None and host_name(headers.get(b"host", b"")) not in self.hosts:
            return (
                421,
                "this server does not answer for that Host header; start it with --allowed-host NAME to "
                "accept it",
                None,
                "host_not_allowed",
                [],
            )
        if self.keys and not _open(scope["path"]) and scope["method"] != "OPTIONS":
            given = headers.get(b"authorization", b"")
            token = given[7:].strip() if given[:7].lower() == b"bearer " else b""
            # compare against every key, always: the time taken says nothing about which key is close
            if not (token and any([hmac.compare_digest(token, key) for key in self.keys])):
                return (
                    401,
                    "invalid or missing API key: send 'Authorization: Bearer <key>'",
                    None,
                    "invalid_api_key",
                    [(b"www-authenticate", b"Bearer")],
                )
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return (400, "Content-Length is not a number", None, "invalid_content_length", [])
            if size > self.max_body:
                return (
                    413,
                    f"the request body is {size} bytes, over the limit of {self.max_body}",
                    None,
                    "body_too_large",
                    [],
                )
        return None

    def _limited(self, receive):
        limit, seen = self.max_body, [0]

        async def receive_limited():
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise HTTPException(413, f"the request body is over the limit of {limit} bytes")
            return message

        return receive_limited


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")


def allowed_host_names(settings) -> frozenset[str] | None:
    """Host names the Guard accepts; None for any (a server bound to every interface with no list,
    or '*' in the list: the operator chose to be reachable by any name)."""
    extra = {name.lower() for name in settings.allowed_hosts}
    if "*" in extra or (settings.host in ANY_ADDRESS and not extra):
        return None
    names = {*LOOPBACK_NAMES, *extra}
    if settings.host not in ANY_ADDRESS:
        names.add(settings.host.lower().strip("[]"))
    return frozenset(names)


def host_name(header: bytes) -> str:
    """The name in a Host header, without port or IPv6 brackets: b"[::1]:8080" -> "::1"."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


async def _respond(send, status: int, message: str, param, code, extra_headers) -> None:
    body = envelope_bytes(status, message, param, code)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
