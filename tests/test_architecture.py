"""The import rules of docs/ARCHITECTURE.md, checked by reading every module's imports.

One direction of dependency: io -> store -> computation -> plot -> cli/report/viewer.
The walker parses each module under src/maxrf with :mod:`ast` (nothing is imported), so a
rule broken in a module no test happens to import still fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "maxrf"

#: top-level parts of maxrf that present results or drive the rest: they may import anything.
#: ``compat`` holds the seed's method names (``HotmaxAtlas.plot_spectra``...), which draw.
PRESENTATION = {"plot", "cli", "report", "viewer", "export", "pipeline", "demo", "__main__", "compat"}
#: what computation modules (everything else) must never import, even inside a function
UPPER_LAYERS = ("maxrf.plot", "maxrf.cli", "maxrf.report", "maxrf.viewer", "maxrf.pipeline")

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# Modules over 600 lines and functions over 80 allowed by name: none now. A new entry needs
# README (Design) to say why the module or function cannot be split.
LONG_MODULES: set[str] = set()
LONG_FUNCTIONS: set[str] = set()


@dataclass(frozen=True)
class Import:
    """One import statement's target, as a dotted module name."""

    importer: str
    target: str
    line: int
    module_level: bool  # runs when the importer is imported (not in a function)
    type_only: bool  # inside ``if TYPE_CHECKING:``


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(root: Path = SRC) -> dict[str, str]:
    """Dotted name -> source text of every module of the maxrf package."""
    return {module_name(p, root): p.read_text() for p in sorted((root / "maxrf").rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, source: str, known: set[str], is_package: bool = False) -> Iterator[Import]:
    """Every import in ``source`` (module ``name``), with where it sits."""

    def visit(node: ast.AST, in_function: bool, type_only: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(name, alias.name, child.lineno, not in_function, type_only)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(name, is_package, child)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    yield Import(name, sub if sub in known else base, child.lineno, not in_function,
                                 type_only)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), in_function, True)
                for stmt in child.orelse:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), in_function, type_only)
            else:
                fn = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                yield from visit(child, in_function or fn, type_only)

    yield from visit(ast.parse(source), False, False)


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # Tarjan; the graph is small enough for recursion
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return cycles


def rule_violations(sources: Mapping[str, str], packages: set[str] | None = None) -> list[str]:
    """Every broken import rule in ``sources`` (dotted module name -> source text)."""
    known = set(sources)
    packages = packages if packages is not None else {
        m for m in known if any(k.startswith(m + ".") for k in known)} | {"maxrf"}
    problems = []
    graph: dict[str, set[str]] = {m: set() for m in known}
    for name, source in sources.items():
        for imp in imports_of(name, source, known, name in packages):
            where = f"{name}:{imp.line} imports {imp.target}"
            if _within(imp.target, "matplotlib") and not _within(name, "maxrf.plot"):
                problems.append(f"{where}: matplotlib only in maxrf.plot")
            if _within(imp.target, "zarr") and not _within(name, "maxrf.store"):
                problems.append(f"{where}: zarr only in maxrf.store")
            if _layer(name) not in PRESENTATION and any(_within(imp.target, up) for up in UPPER_LAYERS):
                problems.append(f"{where}: computation must not import plotting, cli, report or viewer")
            if imp.module_level and not imp.type_only and imp.target in known and imp.target != name:
                graph[name].add(imp.target)
    problems += [f"import cycle: {' -> '.join(c)}" for c in find_cycles(graph)]
    return problems


def _function_lengths(name: str, source: str) -> Iterator[tuple[str, int]]:
    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qual = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield qual, child.end_lineno - child.lineno + 1
                yield from visit(child, qual + ".")

    yield from ((f"{name}:{q}", n) for q, n in visit(ast.parse(source), ""))


# --------------------------------------------------------------------------- the rules
@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    found = source_modules()
    assert len(found) > 50 and "maxrf.store" in found  # the walker sees the package
    return found


def test_import_rules_hold(sources):
    assert rule_violations(sources) == []


def test_no_module_over_600_lines(sources):
    long = {m for m, s in sources.items() if len(s.splitlines()) > MAX_MODULE_LINES}
    assert long - LONG_MODULES == set(), "split these modules (or explain in README and list them)"


def test_no_function_over_80_lines(sources):
    long = {f for m, s in sources.items() for f, n in _function_lengths(m, s) if n > MAX_FUNCTION_LINES}
    assert long - LONG_FUNCTIONS == set(), "split these functions along their sections"


# ------------------------------------------------------------------ the walker itself
def test_walker_finds_each_broken_rule():
    bad = {
        "maxrf": "",
        "maxrf.a": "import maxrf.b\n",
        "maxrf.b": "from maxrf import a\n",  # a <-> b at module level: a cycle
        "maxrf.c": "def f():\n    import matplotlib.pyplot as plt\n",
        "maxrf.d": "from zarr.codecs import BloscCodec\n",
        "maxrf.e": "def draw(r):\n    from maxrf.plot.spectra import plot_spectrum\n",
        "maxrf.plot": "",
        "maxrf.plot.spectra": "import matplotlib\nfrom maxrf import e\n",
        "maxrf.store": "import zarr\n",
        "maxrf.store.cube": "from zarr.codecs import BloscCodec\n",  # the store is a package
        "maxrf.segmentation.store": "import zarr\n",  # a module named store is not the store
    }
    found = rule_violations(bad)
    assert any("cycle" in p and "maxrf.a -> maxrf.b" in p for p in found)
    assert any(p.startswith("maxrf.c:2") and "matplotlib" in p for p in found)
    assert any(p.startswith("maxrf.d:1") and "zarr" in p for p in found)
    assert any(p.startswith("maxrf.segmentation.store:1") and "zarr" in p for p in found)
    assert any(p.startswith("maxrf.e:2") and "computation" in p for p in found)
    assert len(found) == 5, found  # plot/store imports are allowed; e <-> plot is lazy, no cycle


def test_walker_ignores_what_does_not_run_at_import():
    ok = {
        "maxrf.a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from maxrf.b import B\n",
        "maxrf.b": "import maxrf.a\n",
        "maxrf.c": "from . import a\n",  # relative import resolved to maxrf.a
    }
    assert rule_violations(ok, packages={"maxrf"}) == []
    imports = list(imports_of("maxrf.c", ok["maxrf.c"], set(ok)))
    assert [i.target for i in imports] == ["maxrf.a"]


def test_walker_measures_functions():
    src = "def f():\n" + "    x = 1\n" * 90 + "class K:\n    def g(self):\n        pass\n"
    lengths = dict(_function_lengths("maxrf.m", src))
    assert lengths == {"maxrf.m:f": 91, "maxrf.m:K.g": 2}


def test_the_slowest_files_named_for_scheduling_exist():
    from conftest import SLOWEST_FILES

    missing = [f for f in SLOWEST_FILES if not (Path(__file__).parent / f).is_file()]
    assert missing == [], "rename or drop them in tests/conftest.py's SLOWEST_FILES"
