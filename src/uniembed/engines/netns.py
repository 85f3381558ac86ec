"""A private network namespace for engines that will not stay on loopback by themselves.

Milvus 2.3 listens on every interface whatever its `ip` settings say, and Ray rewrites 127.0.0.1 to
the machine's routable address. Started inside a network namespace of their own, which has nothing
but a loopback interface, they cannot reach or be reached from any network; a port forwarder
brings the one port a client needs to the host's 127.0.0.1. Linux only, and it needs root
(`unshare --net`), as in CI.

    with PrivateNetwork() as net:
        net.popen(["ray", "start", "--head", ...])           # a process inside
        net.call_inside(server.start)                         # or a function, run by a thread inside
        port = net.forward(19530)                             # host 127.0.0.1:port -> inside 127.0.0.1:19530
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import threading

CLONE_NEWNET = 0x40000000


def available() -> str | None:
    """None when a private network can be made here, else the reason it cannot."""
    if not os.path.exists("/proc/self/ns/net"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "a private network namespace needs root (unshare --net)"
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (util-linux, iproute2)"
    return None


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


class PrivateNetwork:
    """A network namespace holding only `lo` (up), kept alive by a sleeping process."""

    def __init__(self):
        self._holder: subprocess.Popen | None = None
        self._forwarders: list[socket.socket] = []
        self.path = ""

    def __enter__(self) -> PrivateNetwork:
        reason = available()
        if reason:
            raise RuntimeError(reason)
        self._holder = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && echo up && exec sleep infinity",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._holder.stdout.readline().strip() != "up":
            self.__exit__()
            raise RuntimeError("could not bring up loopback in a new network namespace")
        self.path = f"/proc/{self._holder.pid}/ns/net"
        return self

    def __exit__(self, *exc) -> None:
        for listener in self._forwarders:
            listener.close()
        self._forwarders.clear()
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait()
            self._holder.stdout.close()
            self._holder = None

    def popen(self, args: list[str], **kwargs) -> subprocess.Popen:
        """Start a process inside the namespace."""
        return subprocess.Popen(args, preexec_fn=lambda: _setns(self.path), **kwargs)

    def run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(args, preexec_fn=lambda: _setns(self.path), **kwargs)

    def call_inside(self, work):
        """Run `work()` in a fresh thread that has entered the namespace (a thread's namespace is
        its own: the caller's stays as it was) and return its result; processes it starts are inside."""
        result, error = [], []

        def target():
            try:
                _setns(self.path)
                result.append(work())
            except BaseException as exc:
                error.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join()
        if error:
            raise error[0]
        return result[0]

    def forward(self, inside_port: int) -> int:
        """Listen on the host's 127.0.0.1 (a free port, returned) and relay each connection to
        127.0.0.1:inside_port inside the namespace."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._forwarders.append(listener)

        def accept_loop():
            _setns(self.path)  # sockets this thread makes from now on live inside
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return  # closed on exit
                try:
                    upstream = socket.create_connection(("127.0.0.1", inside_port), timeout=10)
                    upstream.settimeout(None)
                except OSError:
                    client.close()
                    continue
                threading.Thread(target=_relay, args=(client, upstream), daemon=True).start()

        threading.Thread(target=accept_loop, daemon=True).start()
        return listener.getsockname()[1]


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both sides have closed, then close both."""
    import selectors

    peers = {a: b, b: a}
    open_reads = {a, b}
    with selectors.DefaultSelector() as selector:
        for sock in peers:
            selector.register(sock, selectors.EVENT_READ)
        try:
            while open_reads:
                for key, _ in selector.select():
                    source = key.fileobj
                    data = source.recv(1 << 16)
                    if data:
                        peers[source].sendall(data)
                        continue
                    selector.unregister(source)
                    open_reads.discard(source)
                    with contextlib.suppress(OSError):
                        peers[source].shutdown(socket.SHUT_WR)
        except OSError:
            pass
    a.close()
    b.close()
