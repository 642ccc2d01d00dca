"""The package layering of docs/contracts.md holds: no module of src/asap imports a higher layer or a peer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "asap"
LAYER_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*`(asap(?:\.\w+)?)`\s*\|")


def documented_layers() -> dict[str, int]:
    """{"asap.data": 2, ...} from the table of docs/contracts.md ("asap" is the root package's __init__)."""
    text = (ROOT / "docs" / "contracts.md").read_text()
    return {m.group(2): int(m.group(1)) for line in text.splitlines() if (m := LAYER_ROW.match(line))}


def unit_of(module: str) -> str:
    """The layered unit of a dotted module name: `asap.data.text` -> `asap.data`, `asap` -> `asap`."""
    return ".".join(module.split(".")[:2])


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every asap module that `source` (a module of `package`) imports, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from asap import errors` imports asap.errors
            found += [(node.lineno, f"{base}.{a.name}" if base == "asap" else base) for a in node.names]
    return [(line, mod) for line, mod in found if mod == "asap" or mod.startswith("asap.")]


def test_the_table_lists_every_package() -> None:
    layers = documented_layers()
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units - set(layers) == set(), "add the new package to the layering table of docs/contracts.md"
    assert set(layers) - units == set(), "docs/contracts.md lists a package that src/asap does not have"


def test_no_import_runs_up_or_sideways() -> None:
    layers = documented_layers()
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        own = unit_of(name)
        for line, target in imported_modules(path.read_text(), package):
            to = unit_of(target)
            if to != own and layers[to] >= layers[own]:
                where = f"{path.relative_to(ROOT)}:{line}"
                upward.append(f"{where} ({own}, layer {layers[own]}) imports {target} (layer {layers[to]})")
    assert upward == [], "imports against the layering of docs/contracts.md:\n" + "\n".join(upward)


def test_the_checker_sees_lazy_relative_and_package_imports() -> None:
    """The parser finds what the rule must see: imports inside functions, relative ones, `from asap import x`."""
    source = (
        "from . import text\nfrom ..errors import UserError\nfrom asap import models\n"
        "def f():\n    import asap.pipeline.train\n"
    )
    found = [mod for _, mod in imported_modules(source, package="asap.data")]
    assert found == ["asap.data", "asap.errors", "asap.models", "asap.pipeline.train"]
