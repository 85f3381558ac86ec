"""Every relative link in the README and the pages under docs/ points to a file in the repository
(a page once linked from the README was never committed: .gitignore's `results/` hid docs/results)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_relative_link_resolves_to_a_tracked_file():
    tracked = set(
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    )
    broken = []
    for page in pages():
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor on the same page
            path = (page.parent / target.split("#", 1)[0]).resolve()
            relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else None
            if relative is None or (
                relative not in tracked and not any(t.startswith(relative + "/") for t in tracked)
            ):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to files that git does not hold (ignored or missing):\n" + "\n".join(
        broken
    )
