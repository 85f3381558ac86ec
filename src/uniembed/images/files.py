"""Folders of images: which files count, in which order, and what was left out.

A folder is walked in sorted order (so ids and outputs are the same on every machine), into its
sub-folders; a file counts as an image by its suffix (decoding proves it later); a symlink is
followed only when its target lies inside the folder, so `uniembed collection add ./pics photos/`
cannot be tricked into reading /etc through a link. Ids are paths relative to the folder, with
forward slashes, so a file whose name is not valid UTF-8 (it cannot be an id, nor be written to a
parquet file or a collection) is refused by name before any image is read, by every command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from uniembed._text import encodable
from uniembed.errors import InputError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)


@dataclass
class ImageFolder:
    root: Path
    files: list[Path] = field(default_factory=list)  # absolute, sorted by id
    skipped: int = 0  # files that are not images by their suffix
    outside: int = 0  # symlinks that lead out of the folder

    @property
    def ids(self) -> list[str]:
        return [path.relative_to(self.root).as_posix() for path in self.files]

    def summary(self) -> str:
        parts = [f"{len(self.files)} images"]
        if self.skipped:
            parts.append(f"{self.skipped} other files skipped")
        if self.outside:
            parts.append(f"{self.outside} links out of the folder not followed")
        return ", ".join(parts)


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def walk_images(folder: str | Path) -> ImageFolder:
    """Every image file under `folder`; InputError when it is not a folder or holds no image."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{folder} is not a folder")
    root = root.resolve()
    found = ImageFolder(root)
    for directory, subdirs, names in os.walk(root, followlinks=False):
        subdirs.sort()
        here = Path(directory)
        for name in sorted(names):
            path = here / name
            if not is_image_file(name):
                found.skipped += 1
            elif path.is_symlink() and not inside(path, root):
                found.outside += 1
            elif path.is_file():
                found.files.append(path)
            else:
                found.skipped += 1  # a dangling link, a socket, a fifo
    found.files.sort(key=lambda p: p.relative_to(root).as_posix())
    bad = next((path for path in found.files if not encodable(str(path.relative_to(root)))), None)
    if bad is not None:
        shown = os.fsencode(bad).decode("utf-8", "backslashreplace")
        raise InputError(
            f"{shown}: the file name is not valid UTF-8, so it cannot be an id; rename it "
            "(nothing was embedded)"
        )
    if not found.files:
        raise InputError(
            f"{folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}); {found.summary()}"
        )
    return found


def inside(path: Path, folder: Path) -> bool:
    """Whether `path`, symlinks resolved, lies in `folder` (also resolved)."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False
