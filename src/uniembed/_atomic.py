"""Making a whole folder appear at once: build it beside its target, then rename it into place."""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
