"""Making a file or a whole folder appear at once: build it beside its target, then rename it into
place, then fsync the parent folder so the rename itself is on disk.

The guarantee: after a process crash (or SIGKILL) a reader sees the old target or the new one,
never a mix; and once the call has returned, the new one survives a power loss too, because both
the data (fsynced by the writer) and the directory entry (fsynced here) have reached the disk.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (renames, creations) to disk. A no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories; the rename still happened
        pass
    finally:
        os.close(fd)


def replace_file(tmp: Path, target: Path) -> None:
    """os.replace, then fsync the folder: the rename is durable when this returns."""
    os.replace(tmp, target)
    fsync_dir(Path(target).parent)


@contextmanager
def atomic_folder(target: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a staging folder beside `target`; when the block succeeds it becomes `target`, when it
    fails it is removed, so a crash never leaves half a folder at `target`. `target` must be absent
    or an empty folder, unless `replace` (then an existing folder is removed first)."""
    target = Path(target)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir(parents=True)
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target) if replace else target.rmdir()
        os.rename(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
