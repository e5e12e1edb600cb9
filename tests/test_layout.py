"""The house follows the data flow: import rules between areas, no cycles, no giant modules or functions.

Every module's imports are read as text (imports inside functions and ``TYPE_CHECKING`` blocks included),
resolved to the module they name, and checked against the rules in ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgeinvestigate"
ROOT = "edgeinvestigate"
GROUND = {"errors", "_version", "_time", "_http", "_memory", "_scratch"}

# area -> the areas it may import (besides itself and the ground floor)
ALLOWED: dict[str, set[str]] = {
    "ground": set(),
    "models": set(),
    "cloudflare": {"models"},
    "sources": {"models", "cloudflare"},
    "capture": {"models", "cloudflare", "sources"},
    "evidence": {"models", "sources", "cloudflare"},
    "analysis": {"models", "evidence"},
    "replay": {"models", "cloudflare", "evidence", "analysis", "sources"},
    "report": {"models", "evidence", "analysis", "replay", "simulator"},
    "sandbox": {"models"},
    "simulator": {"models"},
    "lab": {
        "models", "cloudflare", "sources", "capture", "evidence", "analysis",
        "replay", "report", "sandbox", "simulator",
    },
    "cli": {"*"},
    "__main__": {"cli"},
}  # fmt: skip
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 150


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _area(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "face"
    return "ground" if parts[1] in GROUND else parts[1]


def _resolve(name: str) -> str | None:
    """The module a dotted import names (``pkg.mod.attr`` -> ``pkg.mod``), or None outside the package."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from pkg import sub`` imports the submodule; ``from mod import name`` imports the module
            targets = [
                f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names
            ]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            targets = [node.args[0].value]
        for target in targets:
            if target == ROOT or target.startswith(ROOT + "."):
                resolved = _resolve(target)
                if resolved and resolved != module:
                    found.add(resolved)
    return found


GRAPH: dict[str, set[str]] = {m: _imports(m) for m in MODULES}


def _allowed(src: str, dst: str) -> bool:
    a, b = _area(src), _area(dst)
    if b == "cli":
        return a in {"cli", "__main__"}
    if b == "face":
        return a == "cli"
    if a == "__main__":
        return b == "cli"
    if a == b or b == "ground":
        return True
    if a == "face":
        return True
    allowed = ALLOWED[a]
    return "*" in allowed or b in allowed


def test_every_area_is_known() -> None:
    unknown = sorted({_area(m) for m in MODULES} - set(ALLOWED) - {"face"})
    assert unknown == [], f"add these areas to ALLOWED and ARCHITECTURE.md: {unknown}"


def test_imports_follow_the_data_flow() -> None:
    breaks = sorted(
        f"{src} -> {dst}" for src, dsts in GRAPH.items() for dst in dsts if not _allowed(src, dst)
    )
    assert breaks == [], "imports against the layout rules (ARCHITECTURE.md):\n" + "\n".join(breaks)


def _cycles() -> list[list[str]]:
    """Every group of modules that import each other, directly or not (strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while (member := stack.pop()) != node:
                group.append(member)
            group.append(node)
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycles() -> None:
    cycles = _cycles()
    assert cycles == [], "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_giant_modules() -> None:
    big = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert big == {}, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_no_giant_functions() -> None:
    big: dict[str, int] = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big[f"{module}.{node.name}"] = length
    assert big == {}, f"functions over {MAX_FUNCTION_LINES} lines: {big}"


@pytest.mark.parametrize(
    ("src", "dst", "ok"),
    [
        ("edgeinvestigate.analysis.rca", "edgeinvestigate.evidence.bundle", True),
        ("edgeinvestigate.analysis.rca", "edgeinvestigate.replay", False),
        ("edgeinvestigate.sandbox.app", "edgeinvestigate.cloudflare.client", False),
        ("edgeinvestigate.report.kernel", "edgeinvestigate", False),
        ("edgeinvestigate.cli._main", "edgeinvestigate", True),
        ("edgeinvestigate.lab._scenario", "edgeinvestigate.cli._main", False),
        ("edgeinvestigate.models.frames", "edgeinvestigate.errors", True),
    ],
)
def test_the_rules_themselves(src: str, dst: str, ok: bool) -> None:
    assert _allowed(src, dst) is ok


def test_architecture_md_matches_the_tree() -> None:
    """ARCHITECTURE.md's layout names every area, and every module it names exists."""
    import re

    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text()
    layout = text[text.index("## Layout") : text.index("## Contracts")]
    areas = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert [a for a in areas if f"`{a}/`" not in layout] == [], "areas missing from ARCHITECTURE.md's layout"
    known = {p.name for p in PACKAGE.rglob("*.py")}
    known |= {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    named = set(re.findall(r"`([\w/]+\.py)`", layout)) | {
        m for group in re.findall(r"\(([^)]*)\)", layout) for m in re.findall(r"`(_?\w+\.py)`", group)
    }
    unknown = sorted(
        n
        for n in named
        if n not in known and n.split("/")[-1] not in known and not (PACKAGE.parent / n).is_file()
    )
    assert unknown == [], f"ARCHITECTURE.md names modules that do not exist: {unknown}"
