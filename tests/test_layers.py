"""Dependencies between mlscale modules point one way: every module imports on its own, no import cycle (static,
`importlib`/`lazy_import` or a `python -c` string), and imports point down the layers of the design."""
import ast, re, subprocess, sys
from pathlib import Path

import pytest

from conftest import ROOT

PKG = "mlscale_sdk"

# The layers of DESIGN.md, top to bottom (a module may import its own layer and the ones below it).
# A submodule belongs to the layer of its package (`train.xgboost` is `train`).
LAYERS = {
    "interfaces": ["server", "api_models", "dashboards", "cli", "widgets", "demo"],
    "operations": ["scheduler", "jobs", "monitor"],
    "ml": ["features", "train", "tracking"],
    "compute": ["clusters", "data", "gateway", "kubernetes", "environment", "slurm", "costs"],
    "base": ["config", "store", "errors", "status", "formatting"],
}
LEVEL = {name: i for i, (_, names) in enumerate(reversed(LAYERS.items())) for name in names}   # base = 0
IMPORT_CALLS = {"import_module", "lazy_import", "__import__"}
MODULE_RE = re.compile(rf"(?:from|import)\s+({PKG}(?:\.\w+)*)")


def modules() -> dict:
    "Dotted module name -> file, for every module of the package."
    out = {}
    for f in sorted((ROOT / PKG).rglob("*.py")):
        rel = f.relative_to(ROOT).with_suffix("")
        if "labextension" in rel.parts or rel.name == "_modidx":
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = f
    return out


def _resolve(name: str, known) -> str | None:
    "The longest known module that `name` is or lies in."
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in known:
            return ".".join(parts[:i])
    return None


def _absolute(node: ast.ImportFrom, mod: str, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _strings(tree) -> dict:
    "Names bound to a string constant anywhere in the module (for `-c` code held in a variable)."
    out = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str):
            for t in n.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = n.value.value
    return out


def _text(node, strings: dict) -> str | None:
    "The text of a string node: a constant, an f-string's constant parts, or a name bound to a constant."
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "_" for v in node.values)
    if isinstance(node, ast.Name):
        return strings.get(node.id)
    return None


def _code_imports(code: str) -> list:
    "The mlscale modules a `python -c` program imports."
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return MODULE_RE.findall(code)
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            found += [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module:
            found += [n.module] + [f"{n.module}.{a.name}" for a in n.names]
    return found


def _type_checking_nodes(tree) -> set:
    "Nodes under `if TYPE_CHECKING:` (imports for annotations only)."
    skip = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            skip |= {id(x) for b in n.body for x in ast.walk(b)}
    return skip


def imports_of(mod: str, source: str, known, lazy: dict | None = None, is_pkg: bool = False) -> list:
    "`(target module, line, how)` for every mlscale module that `source` (module `mod`) imports, any way."
    tree, lazy = ast.parse(source), lazy or {}
    strings, skip, out = _strings(tree), _type_checking_nodes(tree), []

    def add(name, node, how):
        target = _resolve(name, known)
        if target and target != mod:
            out.append((target, node.lineno, how))

    for n in ast.walk(tree):
        if id(n) in skip:
            continue
        if isinstance(n, ast.Import):
            for a in n.names:
                add(a.name, n, f"import {a.name}")
        elif isinstance(n, ast.ImportFrom):
            base = _absolute(n, mod, is_pkg)
            for a in n.names:
                sub = f"{base}.{a.name}"
                name = sub if sub in known else f"{PKG}.{lazy[a.name]}" if base == PKG and a.name in lazy else base
                add(name, n, f"from {'.' * n.level}{n.module or ''} import {a.name}")
        elif isinstance(n, ast.Call):
            fn = n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", None)
            if fn in IMPORT_CALLS and n.args and (t := _text(n.args[0], strings)):
                add(t, n, f"{fn}({t!r})")
        if isinstance(n, (ast.List, ast.Tuple, ast.Call)):
            items = n.elts if not isinstance(n, ast.Call) else n.args
            for flag, arg in zip(items, items[1:]):
                if _text(flag, strings) == "-c" and (code := _text(arg, strings)):
                    for name in _code_imports(code):
                        add(name, n, f"python -c {code[:60]!r}")
                elif _text(flag, strings) == "-m" and (name := _text(arg, strings)):
                    add(name, n, f"python -m {name}")
    return out


def graph() -> dict:
    "module -> [(target, file:line, how)], for the whole package."
    known = modules()
    root_src = known[PKG].read_text()
    lazy = next((ast.literal_eval(n.value) for n in ast.walk(ast.parse(root_src))
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "_LAZY"), {})
    g = {}
    for mod, f in known.items():
        if mod == PKG:
            continue   # the package facade: resolves names lazily, imports nothing itself
        where = f.relative_to(ROOT)
        g[mod] = [(t, f"{where}:{line}", how) for t, line, how in
                  imports_of(mod, f.read_text(), known, lazy, f.name == "__init__.py") if t != PKG]
    return g


def cycles(g: dict) -> list:
    "The strongly connected components with more than one module (Tarjan), each as a list of modules."
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w, *_ in g.get(v, []):
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

    sys.setrecursionlimit(10_000)
    for v in list(g):
        if v not in index:
            visit(v)
    return out


def _cycle_path(g: dict, comp: list) -> list:
    "The shortest cycle through the component's first module, as edges `(module, target, where, how)`."
    inside, start = set(comp), comp[0]
    prev, queue = {}, [start]
    while queue:
        v = queue.pop(0)
        for t, where, how in g[v]:
            if t not in inside or t in prev:
                continue
            prev[t] = (v, t, where, how)
            if t == start:
                path = [prev[start]]
                while path[0][0] != start:
                    path.insert(0, prev[path[0][0]])
                return path
            queue.append(t)
    raise AssertionError(f"no cycle through {start} in {comp}")


def describe(g: dict, comp: list) -> str:
    path = _cycle_path(g, comp)
    chain = " -> ".join([path[0][0]] + [t for _, t, _, _ in path])
    steps = "\n".join(f"    {a} -> {b}  at {where}: {how}" for a, b, where, how in path)
    return f"  {chain}  (a cycle among {', '.join(comp)})\n{steps}"


def layer_of(mod: str) -> str:
    return mod.split(".")[1]


# ---------------------------------------------------------------- the finder finds every kind of import

def test_the_finder_sees_importlib_lazy_import_and_python_c():
    known = {f"{PKG}.{m}" for m in ("config", "jobs", "monitor", "scheduler", "cli", "clusters", "train", "train.tune")}
    src = '''
import importlib, subprocess, sys
from typing import TYPE_CHECKING
from .config import settings
from . import clusters as C
if TYPE_CHECKING:
    from .cli import main
CODE = "from mlscale_sdk.cli import main; main()"
def f():
    importlib.import_module("mlscale_sdk.monitor")
    lazy_import("mlscale_sdk.train.tune")
    subprocess.Popen([sys.executable, "-c", "from mlscale_sdk.scheduler import runner_main; runner_main()", "x"])
    subprocess.run([sys.executable, "-c", CODE])
    subprocess.run(["sh", "-c", "mkdir -p x && exec \\"$@\\""])
'''
    found = {(t, how.split()[0]) for t, _, how in imports_of(f"{PKG}.jobs", src, known)}
    assert {t for t, _ in found} == {f"{PKG}.{m}" for m in ("config", "clusters", "monitor", "train.tune", "scheduler", "cli")}
    assert (f"{PKG}.cli", "python") in found, "a -c string held in a variable"
    assert (f"{PKG}.cli", "from") not in found, "imports under TYPE_CHECKING are for annotations only"


def test_cycle_finder_names_the_cycle():
    g = {"a": [("b", "a.py:1", "import b")], "b": [("c", "b.py:2", "import c")], "c": [("a", "c.py:3", "lazy_import('a')")]}
    (comp,) = cycles(g)
    msg = describe(g, comp)
    assert "a -> b -> c -> a" in msg and "c.py:3: lazy_import('a')" in msg


# ---------------------------------------------------------------- the package

def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    failed = {}
    for mod in modules():
        r = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True, text=True, cwd=ROOT, timeout=120)
        if r.returncode != 0:
            failed[mod] = r.stderr.strip().splitlines()[-1]
    assert not failed, "modules that fail to import in a fresh interpreter:\n" + "\n".join(f"  {m}: {e}" for m, e in failed.items())


def test_every_module_has_a_layer():
    unknown = sorted({layer_of(m) for m in graph()} - set(LEVEL))
    assert not unknown, (f"modules without a layer: {unknown}; add each to LAYERS in tests/test_layers.py "
                         "where DESIGN.md's module map puts it")


def test_no_import_cycles():
    g = graph()
    found = cycles(g)
    assert not found, "import cycles between mlscale modules:\n" + "\n".join(describe(g, c) for c in found)


def test_imports_point_down_the_layers():
    up = [f"  {mod} ({layer_of(mod)}) -> {t} ({layer_of(t)})  at {where}: {how}"
          for mod, edges in graph().items() for t, where, how in edges
          if layer_of(mod) in LEVEL and layer_of(t) in LEVEL and LEVEL[layer_of(t)] > LEVEL[layer_of(mod)]]
    assert not up, "imports that point up the layers of DESIGN.md:\n" + "\n".join(up)
