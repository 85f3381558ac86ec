"""A new payload field and the rows that bring it are two LanceDB commits: LanceDB cannot add a
column and rows in one (its `add` and `merge_insert` refuse fields the table lacks). So:

- the writer first records, in `schema-change.json`, the version before the change; then commits
  the new columns (exactly one version), then the rows, then removes the record;
- a reader whose latest version is exactly that column-only commit reads the version before it
  instead, so readers never see a new column without its rows;
- a writer that finds a record left by a crash (it holds the writer lock, so nobody else is
  writing) restores the version before a column-only commit, or just drops the record when the
  rows made it, so a crash never fixes a field's type for good.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from uniembed._atomic import fsync_dir, replace_file

RECORD = "schema-change.json"


def begin(folder: Path, before: int) -> None:
    tmp = Path(folder) / f".{RECORD}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"before": before}, f)
        f.flush()
        os.fsync(f.fileno())
    replace_file(tmp, Path(folder) / RECORD)


def end(folder: Path) -> None:
    (Path(folder) / RECORD).unlink(missing_ok=True)
    fsync_dir(Path(folder))


def version_before(folder: Path) -> int | None:
    """The version recorded before an unfinished schema change, or None."""
    try:
        before = json.loads((Path(folder) / RECORD).read_text(encoding="utf-8"))["before"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no record (the usual case), or one too damaged to act on
    return before if isinstance(before, int) and not isinstance(before, bool) else None
