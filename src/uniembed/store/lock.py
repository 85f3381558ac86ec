"""One writer at a time: an exclusive, non-blocking lock on a file in the collection folder.

The operating system releases the lock when the process dies (even by kill -9), so a crashed
writer never leaves a collection locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from uniembed.errors import CollectionLockedError


class WriterLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CollectionLockedError(
                f"collection {self.path.parent} is being written by another process (pid {holder}); "
                f"readers are not blocked, writers must wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
