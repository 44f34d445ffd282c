"""The package's shape: the map of README.md's package table (DESIGN.md section 8), read from facelib's own source.

Every import of a facelib module by another (at module level or inside a function; not those under
``if TYPE_CHECKING:``, which never run) must point to a module on an earlier line of the map, and the
imports must not form a loop. Modules stay small: one idea each.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "facelib"

# README.md's package table (DESIGN.md section 8), top to bottom: a module may import modules of its own
# line or an earlier one. A name maps every module under it, unless a longer name says otherwise; the
# package itself ("facelib", its __init__) only itself.
MAP: tuple[tuple[str, ...], ...] = (
    ("facelib", "facelib.config", "facelib.files", "facelib.results"),
    ("facelib.viz",),
    ("facelib.mesh",),
    ("facelib.render",),
    ("facelib.gcn",),
    ("facelib.morphable",),
    ("facelib.nets",),
    ("facelib.losses",),
    ("facelib.data",),
    ("facelib.evaluate", "facelib.evaluate.identity"),  # metrics, intervals, the benchmark loop; the identity measurement
    ("facelib.fit",),
    ("facelib.evaluate.regressor",),  # the coarse stage scored (fits the photos)
    ("facelib.texture_inputs",),
    ("facelib.evaluate.photos",),  # re-rendering scores of a photo: reads it as the texture stage does
    ("facelib.refine",),
    ("facelib.reconstruct",),
    ("facelib.evaluate.pipeline",),  # reconstruct's stages as benchmark methods
    ("facelib.train",),
    ("facelib.evaluate.runs",),  # trained runs as benchmark methods, and the ablation study
    ("facelib.course",),
    ("facelib.bench", "facelib.cli"),
    ("facelib.__main__",),
)

# Pairs the map's order would allow but the design rules out (DESIGN.md section 8).
FORBIDDEN = (
    ("facelib.train", "facelib.refine"),  # train composes gcn, render, losses and nets; it does not reach into refine
    ("facelib.train", "facelib.reconstruct"),
)

MAX_LINES = 450
MAX_LONG_LINES = 600  # even the modules allowed past MAX_LINES stop here
# Modules allowed past MAX_LINES, each with the reason it is one idea all the same.
LONG_MODULES: dict[str, str] = {
    "facelib.gcn.texture": "the paper's network: Refiner, Decoder and CombineNet share TextureGCNConfig and are read together",
    "facelib.mesh.hierarchy": "one class, MeshHierarchy: quadric and subdivision hierarchies and their sampling matrices",
    "facelib.morphable.builder": "one recipe: the open face model built from the MakeHuman assets, step after step",
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def line_of(module: str) -> int:
    """The map line of ``module``: that of the longest map name that is the module or contains it."""
    best, line = "", -1
    for i, names in enumerate(MAP):
        for name in names:
            covers = module == name or (name != "facelib" and module.startswith(name + "."))
            if covers and len(name) > len(best):
                best, line = name, i
    if line < 0:
        raise AssertionError(f"{module} is on no line of the map: add it to MAP and to README.md's package table")
    return line


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    return skip


def facelib_imports(path: Path, root: Path = ROOT, modules: dict[str, Path] = MODULES) -> list[tuple[str, int, bool]]:
    """The facelib modules ``path`` imports at run time: (module, line number, at module level)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    top = {id(n) for n in tree.body}
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from package import submodule` imports the submodule; `from module import name` the module.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            if target == "facelib" or target.startswith("facelib."):
                while target not in modules and "." in target:  # `import facelib.x.y` of a name inside a module
                    target = target.rpartition(".")[0]
                out.append((target, node.lineno, id(node) in top))
    return out


GRAPH = {name: facelib_imports(path) for name, path in MODULES.items()}


def test_every_import_follows_the_map():
    wrong = []
    for module, imports in GRAPH.items():
        for target, lineno, _ in imports:
            if target == module:
                continue
            if line_of(target) > line_of(module):
                wrong.append(f"{MODULES[module].relative_to(ROOT.parent)}:{lineno}: {module} (map line {line_of(module)}) "
                             f"imports {target} (map line {line_of(target)}), which comes later in the map")
            for lower, higher in FORBIDDEN:
                if (module == lower or module.startswith(lower + ".")) and (target == higher or target.startswith(higher + ".")):
                    wrong.append(f"{MODULES[module].relative_to(ROOT.parent)}:{lineno}: {module} imports {target}, "
                                 f"which DESIGN.md section 8 rules out ({lower} must not import {higher})")
    assert not wrong, "imports against DESIGN.md section 8's map:\n" + "\n".join(wrong)


def find_loop(graph: dict[str, list[str]]) -> list[str] | None:
    """A loop of the directed graph as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (loop := visit(nxt)):
                return loop
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (loop := visit(node)):
            return loop
    return None


def test_find_loop_finds_loops_and_only_loops():
    assert find_loop({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_loop({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_loop({"a": ["b", "c"], "b": ["c"], "c": []}) is None


def test_no_import_loops():
    graph = {m: sorted({t for t, _, _ in imports if t != m}) for m, imports in GRAPH.items()}
    loop = find_loop(graph)
    assert loop is None, "an import loop: " + " -> ".join(loop)


def test_the_reader_sees_relative_and_function_level_imports_and_skips_type_checking(tmp_path):
    root = tmp_path / "facelib"
    (root / "render").mkdir(parents=True)
    (root / "losses").mkdir()
    for name in ("__init__.py", "render/__init__.py", "render/renderer.py", "losses/__init__.py"):
        (root / name).write_text("")
    probe = root / "render" / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nfrom .renderer import FaceRenderer\n"
                     "if TYPE_CHECKING:\n    from facelib.morphable.model import MorphableModel\n"
                     "def f():\n    from facelib.losses import photometric_loss\n")
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    found = {(target, top) for target, _, top in facelib_imports(probe, root, modules)}
    assert found == {("facelib.render.renderer", True), ("facelib.losses", False)}
    assert line_of("facelib.losses") > line_of("facelib.render.probe")  # the function-level import goes up the map


def test_long_module_entries_name_modules_that_exist():
    assert set(LONG_MODULES) <= set(MODULES), f"LONG_MODULES names modules that are gone: {sorted(set(LONG_MODULES) - set(MODULES))}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    if module in LONG_MODULES:
        assert MAX_LINES < lines <= MAX_LONG_LINES, (f"{module} has {lines} lines: a LONG_MODULES entry is for "
                                                     f"{MAX_LINES + 1}-{MAX_LONG_LINES} lines (remove the entry, or split the module)")
        return
    assert lines <= MAX_LINES, (f"{MODULES[module].relative_to(ROOT.parent)} has {lines} lines (at most {MAX_LINES}): "
                                "split it by idea, or add it to LONG_MODULES with the reason it is one idea")


def test_the_readme_table_is_the_map():
    readme = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+)(?:-(\d+))? \| (.+?) \| .+ \|$", readme, flags=re.M)
    assert rows, "README.md has no package table (| line | modules | what |)"
    named = []
    for first, last, cell in rows:
        for name in re.findall(r"`([\w.]+)`", cell):
            module = name if name.startswith("facelib") else f"facelib.{name}"
            named.append(module)
            assert int(first) <= line_of(module) <= int(last or first), (
                f"README.md puts {module} on line {first}{'-' + last if last else ''}, the map (MAP) on line {line_of(module)}")
    on_map = {name for names in MAP for name in names} - {"facelib"}
    assert on_map <= set(named), f"README.md's package table leaves out {sorted(on_map - set(named))}"
