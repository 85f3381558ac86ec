"""uvicorn's HTTP protocol with the two bounds it lacks against slow or idle clients.

uvicorn arms no timer on a new connection, and none while a request's headers or body trickle
in: 2,000 half-open connections stayed open indefinitely, bounded only by the fd limit, before
any authentication ran. This subclass adds
- a read deadline: a request's headers and body must arrive within `read_timeout` seconds of the
  connection opening (or of the previous response, on a kept-alive connection), else the
  connection is closed; idle kept-alive connections still close after uvicorn's own
  `timeout_keep_alive`;
- a connection cap: past `max_connections` open connections, a new one is closed at once,
  before it can hold any memory. (uvicorn's `limit_concurrency` only answers 503 to complete
  requests, so half-open connections never reach it.)
"""

from __future__ import annotations


def guarded_protocol(read_timeout: float, max_connections: int) -> type:
    """An HttpToolsProtocol subclass bound to these limits, for uvicorn.Config(http=...)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _deadline = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.abort()  # connection_lost() removes it from self.connections
                return
            self._arm()

        def on_message_complete(self) -> None:
            self._disarm()  # the whole request is in: the app may take as long as it needs
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets its own deadline

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(read_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None  # armed only while a request is awaited or being read
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpToolsProtocol
