"""The shape of the package: imports flow one way (no cycles), no private name is imported
across modules, docs/architecture.md names every module, and nothing refers outside the
repository."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "harness"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every runtime import, function-level ones included;
    imports under ``if TYPE_CHECKING:`` are for annotations only and never run."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [a.name for a in node.names]
            found.append((module, names))
            for name in names:  # `from . import x` imports the submodule x
                found.append((f"{module}.{name}", []))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _ in _imports(path):
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _parent_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop edges from a package's __init__ to its own submodules (a registry importing
    its members is not a cycle with them)."""
    return {m: {t for t in targets if not t.startswith(m + ".")} for m, targets in graph.items()}


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_among_harness_modules():
    assert _cycles(_parent_packages(_graph())) == []


def test_no_private_names_imported_across_modules():
    offenders = []
    for path in PKG.rglob("*.py"):
        for module, names in _imports(path):
            if module.startswith("harness"):
                offenders += [f"{path.relative_to(ROOT)}: {module}.{n}" for n in names
                              if n.startswith("_") and not n.startswith("__")]
    assert offenders == []


def test_architecture_doc_names_every_module():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if path.name == "__init__.py" and rel.parent != Path("."):
            continue  # a subpackage is named by its folder (`scorers/`, `train/`)
        if path.name == "__init__.py":
            continue
        if f"`{path.name}`" not in doc and f"`{rel.as_posix()}`" not in doc:
            missing.append(rel.as_posix())
    assert missing == []


def test_nothing_refers_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:  # not a git checkout (an sdist): walk the tree instead
        files = [p for p in ROOT.rglob("*") if p.is_file() and ".nox" not in p.parts]
    else:
        files = [ROOT / f for f in tracked.stdout.splitlines()]
    needle = "../" + "shared"  # spelled in two parts so this file does not match itself
    hits = [str(f.relative_to(ROOT)) for f in files
            if f.is_file() and f.suffix not in (".safetensors", ".model")
            and needle in f.read_text(encoding="utf-8", errors="ignore")]
    assert hits == []
