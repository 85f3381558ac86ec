"""The layers of docs/architecture.md hold: no module imports from a higher layer (lazy imports
included), no cycle between subpackages, no import of another module's `_private` name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "uniembed"


def layers() -> dict[str, int]:
    """Top-level module or subpackage -> its layer, read from docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("<!-- layers -->", 1)[1].split("<!-- /layers -->", 1)[0]
    found = {}
    for number, names in re.findall(r"^layer (\d+) +\S.*?  +(\S.*)$", table, re.M):
        for name in names.split():
            found[name] = int(number)
    return found


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path):
    """(imported module, imported names, line) for every uniembed import in a module, lazy or not."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("uniembed"):
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            if target.startswith("uniembed"):
                yield target, [alias.name for alias in node.names], node.lineno


def top(name: str) -> str:
    return name.split(".")[1] if name.count(".") else name


def edges(known: dict[str, Path] | None = None):
    known = modules() if known is None else known
    for name, path in known.items():
        if name == "uniembed":  # the lazy public exports reach up by design
            continue
        for target, names, line in imports(name, path):
            targets = [target] + [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            for each in targets:
                if each != "uniembed":
                    yield name, each, names, line


def test_every_subpackage_has_a_layer():
    named = layers()
    missing = {top(name) for name in modules() if name != "uniembed"} - set(named)
    assert missing == set(), f"add {sorted(missing)} to the layer table of docs/architecture.md"


def upward_imports(known: dict[str, Path] | None = None) -> list[str]:
    named = layers()
    return [
        f"{name}:{line} imports {target}"
        for name, target, _, line in edges(known)
        if named.get(top(target), 0) > named.get(top(name), 0)
    ]


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports() == []


def test_no_cycle_between_subpackages():
    graph: dict[str, set[str]] = {}
    for name, target, _, _ in edges():
        if top(name) != top(target):
            graph.setdefault(top(name), set()).add(top(target))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(a for a in graph if reaches(a, a, {a}))
    assert cycles == []


def test_no_module_imports_another_modules_private_name():
    known = modules()
    private = [
        f"{name}:{line} imports {target}.{imported}"
        for name, path in known.items()
        for target, names, line in imports(name, path)
        for imported in names
        if imported.startswith("_")
        and not imported.startswith("__")
        and target != name
        and f"{target}.{imported}" not in known  # a private module of the package is not a name
    ]
    assert private == []


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The check itself can fail: a core module importing the store lazily is an upward edge."""
    module = tmp_path / "errors.py"
    module.write_text("def f():\n    from uniembed.store.folder import FolderCollection\n")
    assert upward_imports({"uniembed.errors": module}) == [
        "uniembed.errors:2 imports uniembed.store.folder"
    ]


def test_no_module_is_over_500_lines():
    """STYLE 10: files under ~500 lines; past that a module holds several jobs."""
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}
