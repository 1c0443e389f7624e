"""The import graph keeps its layers (:mod:`disbench.layers`), and ``import disbench`` stays light.

Every import of disbench/ and dvae_plugin/ — at a module's top or inside a
function — is read with ``ast`` and checked against the layer table: an import
from a higher layer fails, naming its file and line, unless the line carries
the mark and a reason (at most ``MAX_UPWARD`` such lines). disbench never
imports dvae_plugin.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from disbench.layers import LAYERS, MAX_UPWARD, UPWARD_MARK, layer_of, listed_as

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("disbench", "dvae_plugin")
# What `import disbench` must not load: torch.compile's machinery and the heavy optional libraries.
HEAVY = ("torch._dynamo", "torch._inductor", "ray", "sklearn", "pandas", "matplotlib", "dvae_plugin")


@dataclass(frozen=True)
class Import:
    source: str   # the importing module
    target: str   # the project module imported
    path: Path
    line: int
    text: str     # the import's source lines
    in_function: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def marked(self) -> bool:
        return UPWARD_MARK in self.text

    @property
    def upward(self) -> bool:
        return layer_of(self.target) > layer_of(self.source)


def module_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


MODULES = module_files()


def _resolve(name: str) -> str | None:
    """The most specific project module ``name`` (a dotted import path) lies in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [f"{prefix}.{alias.name}" for alias in node.names]  # a submodule, else a name in ``prefix``
    return sorted({t for t in map(_resolve, names) if t})


def project_imports() -> list[Import]:
    found = []
    for module, path in MODULES.items():
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inside = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                source = "\n".join(lines[node.lineno - 1:node.end_lineno])
                for target in _targets(node, module, path.name == "__init__.py"):
                    if target != module:
                        found.append(Import(module, target, path, node.lineno, source, id(node) in inside))
    return found


IMPORTS = project_imports()


def test_every_module_has_a_layer():
    unlisted = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unlisted, f"give these modules a layer in disbench/layers.py: {', '.join(unlisted)}"


def test_no_import_goes_up_a_layer_unless_marked():
    upward = [i for i in IMPORTS if i.upward and not i.marked]
    assert not upward, "imports from a higher layer (move the code down, or pass the dependency in):\n" + "\n".join(
        f"  {i.where}: {i.source} ({LAYERS[layer_of(i.source)][0]}) imports {i.target} "
        f"({LAYERS[layer_of(i.target)][0]})" for i in upward)


def test_marked_upward_imports_are_few_and_say_why():
    marked = [i for i in IMPORTS if i.marked]
    stale = [i.where for i in marked if not i.upward]
    assert not stale, f"marked as upward but not going up (drop the mark): {', '.join(stale)}"
    reasonless = [i.where for i in marked if not i.text.split(UPWARD_MARK, 1)[1].strip()]
    assert not reasonless, f"upward imports without a reason after {UPWARD_MARK!r}: {', '.join(reasonless)}"
    places = sorted({i.where for i in marked})
    assert len(places) <= MAX_UPWARD, f"{len(places)} upward imports, at most {MAX_UPWARD}: {', '.join(places)}"


def test_layers_have_no_cycles_between_their_entries():
    """Within one layer, two entries (say disbench.evaluation and disbench.loggers)
    may not import each other round a cycle either."""
    graph: dict[str, set] = {}
    for i in IMPORTS:
        if not i.marked and listed_as(i.source) != listed_as(i.target):
            graph.setdefault(listed_as(i.source), set()).add(listed_as(i.target))
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_disbench_never_imports_dvae_plugin():
    offending = [i.where for i in IMPORTS if i.source.split(".")[0] == "disbench"
                 and i.target.split(".")[0] == "dvae_plugin"]
    assert not offending, f"disbench imports dvae_plugin at {', '.join(offending)}"


def test_import_disbench_stays_light():
    code = "import disbench, sys; print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules = set(ast.literal_eval(loaded))
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not heavy, f"`import disbench` loads {', '.join(heavy)}"
