"""The package's shape: imports point one way, no cycles, no oversized files.

Every ``import`` statement of ``src/vidrec`` counts, also one inside a function (a deferred import is
still a dependency). Layers, top to bottom (a module may import its own layer and those below):

    cli > pipeline > evaluation > serving | analytics > models > data | devdata > config > constants

Siblings separated by ``|`` never import each other. The deep training side
(``models.deep.{train,loader,networks}``) must run on a GPU box without Java: it never imports pyspark.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "vidrec"
#: Top to bottom; a tuple is a layer of siblings that must not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("cli",),
    ("pipeline",),
    ("evaluation",),
    ("serving", "analytics"),
    ("models",),
    ("data", "devdata"),
    ("config",),
    ("constants",),
]
#: Modules that must import without Spark (they run under torchrun on a GPU box).
SPARK_FREE = ("vidrec.models.deep.train", "vidrec.models.deep.loader", "vidrec.models.deep.networks")
MAX_LINES = 800


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.joinpath(PACKAGE).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package (and top-level external packages) that ``path`` imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            for alias in node.names:  # `from vidrec.models import als` imports the module vidrec.models.als
                if f"{mod}.{alias.name}" in known:
                    out.add(f"{mod}.{alias.name}")
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {
        name: {m for m in imports_of(name, path, known) if m in known and m != name}
        for name, path in mods.items()
    }


def layer_of(module: str) -> tuple[int, str] | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    for i, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return i, parts[1]
    return None


def test_every_module_belongs_to_a_layer() -> None:
    loose = [m for m in modules() if m != PACKAGE and layer_of(m) is None]
    assert loose == [], f"modules outside every layer of {LAYERS}: {loose}"


def test_imports_point_down_the_layers() -> None:
    bad = []
    for src, targets in graph().items():
        ls = layer_of(src)
        if ls is None:
            continue
        for dst in targets:
            ld = layer_of(dst)
            if ld is None:
                continue
            if ld[0] < ls[0] or (ld[0] == ls[0] and ld[1] != ls[1]):
                bad.append(f"{src} -> {dst}")
    assert bad == [], "imports that point up or sideways:\n" + "\n".join(sorted(bad))


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    g = graph()
    # a package's __init__ re-exporting its submodules is not a cycle with them: drop parent edges
    for src in g:
        g[src] = {d for d in g[src] if not src.startswith(d + ".")}
    cycles = strongly_connected(g)
    assert cycles == [], f"import cycles: {cycles}"


def test_strongly_connected_finds_a_cycle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("name", SPARK_FREE)
def test_training_side_never_imports_spark(name: str) -> None:
    """Neither the module nor anything of the package it imports, transitively, imports pyspark."""
    mods = modules()
    todo = [m for m in mods if m == name or m.startswith(name + ".")]
    assert todo, f"no module {name}"
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        imported = imports_of(m, mods[m], set(mods))
        spark = sorted(x for x in imported if x == "pyspark" or x.startswith("pyspark."))
        assert spark == [], f"{m} (reached from {name}) imports {spark}"
        todo += [x for x in imported if x in mods]


def test_no_library_file_over_the_line_limit() -> None:
    long = {
        m: n
        for m, p in modules().items()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"files over {MAX_LINES} lines: {long}"
