"""Stop waiting for work whose client has gone away.

After a request's body is read, the ASGI `receive` channel has one message left to give:
`http.disconnect`, when the client closes the connection (or once the response is sent). Racing it
against the work's future lets a handler cancel the future, and the batcher drops a cancelled
job's remaining parts instead of encoding texts nobody will read.
"""

from __future__ import annotations

import asyncio

CLIENT_CLOSED = 499  # the status nginx logs for "client closed the request"; nobody receives it


class ClientGone(Exception):
    """The client disconnected before its result was ready; the work was cancelled."""


async def unless_client_gone(receive, future: asyncio.Future):
    """`await future`, or cancel it and raise ClientGone when the client disconnects first."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not watcher.done():
            watcher.cancel()
    if not future.done():
        future.cancel()
        raise ClientGone()
    return future.result()  # the work's own error, if it failed
