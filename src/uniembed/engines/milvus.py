"""A throwaway local Milvus 2.3 standalone server, for tests, benches and trying the Milvus backend
on one machine. Production users point uniembed at their own Milvus instead.

    with LocalMilvus() as server:
        url = server.url("docs")            # milvus://127.0.0.1:PORT/docs

The server is the real Milvus engine (Go + C++, embedded etcd and RocksMQ) from the PyPI package
`milvus==2.3.5` (2.3.6 and later are not installable from PyPI). Its configuration template leaves
every component's `ip` empty, which Milvus reads as "the first non-loopback address"; this sets
them all to 127.0.0.1. Milvus still listens on every interface, so as root the server runs in a
network namespace of its own (uniembed.engines.netns: only loopback exists there) and its proxy
port is relayed to the host's 127.0.0.1. (milvus-lite 3.x is a different, pure-Python program on
FAISS and is not used.)
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from uniembed._extras import require
from uniembed.engines import netns


class LocalMilvus:
    """Start on enter (about 10 s), stop and remove the data folder on exit."""

    def __init__(self, time_tick_ms: int = 200):
        # how often the proxy advances time; a strong-consistency read waits for the next tick
        # (200 ms is Milvus' default; the tests take 50 to run faster)
        self.time_tick_ms = int(time_tick_ms)
        self.folder: Path | None = None
        self.port: int | None = None
        self.isolation = "a private network namespace: only loopback exists there"
        self._server = None
        self._network = None

    def __enter__(self) -> LocalMilvus:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        require("milvus-server")
        import milvus

        package_data = Path(milvus.__file__).parent / "data"
        self.folder = Path(tempfile.mkdtemp(prefix="uniembed-milvus-"))
        template = (package_data / "config.yaml.template").read_text(encoding="utf-8")
        template = re.sub(r"^(\s*)ip:\s*(#.*)?$", r"\1ip: 127.0.0.1", template, flags=re.MULTILINE)
        template = template.replace("address: localhost", "address: 127.0.0.1")
        template = template.replace("endpoints: localhost:", "endpoints: 127.0.0.1:")
        template = re.sub(
            r"^(  timeTickInterval:) 200", rf"\1 {self.time_tick_ms}", template, flags=re.MULTILINE
        )
        patched = self.folder / "milvus.yaml.template"
        patched.write_text(template, encoding="utf-8")
        config = milvus.MilvusServerConfig(
            template=str(patched), data_dir=str(self.folder / "server")
        )
        config.glog_conf_file = str(
            package_data / "glog.conf"
        )  # only set by the default template's loader
        self._server = milvus.MilvusServer(config)
        reason = netns.available()
        try:
            if (
                reason is None
            ):  # its own network: Milvus binds every interface it sees, which is then only lo
                self._network = netns.PrivateNetwork().__enter__()
                self._network.call_inside(self._server.start)
                self.port = self._network.forward(self._server.listen_port)
            else:
                self.isolation = f"none ({reason}): Milvus listens on every interface"
                self._server.start()
                self.port = self._server.listen_port
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._network is not None:
            self._network.__exit__()
            self._network = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def url(self, collection: str | None = None) -> str:
        base = f"milvus://127.0.0.1:{self.port}"
        return f"{base}/{collection}" if collection else base

    def log(self) -> str:
        logs = self.folder / "server" / "logs" if self.folder else None
        if logs is None or not logs.is_dir():
            return ""
        return "\n".join(
            path.read_text(errors="replace")[-2000:] for path in sorted(logs.glob("milvus-*.log"))
        )
