"""Build the documentation site from nbs/ the nbdev way: execute the notebooks (outputs visible), let nbdev process them
(show_doc for every export, hidden cells and directives removed, sidebar), then render with Quarto (`nbdev-docs`).

Quarto comes from the `quarto-cli` package (`pip install -e ".[docs]"`). That package downloads Quarto's binary while
it installs, so where only package registries are reachable it cannot be installed; without a `quarto` on PATH the
processed notebooks are rendered to HTML by nbconvert instead (same pages and sidebar, plainer look).

    python tools/build_docs.py [--dest _docs] [--workers 1] [--no-exec]
"""
import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def stage(build: Path, only: str = "*.ipynb") -> Path:
    "A copy of the project's notebooks, library and config to build in (the source notebooks stay clean)."
    ignore = shutil.ignore_patterns("__pycache__", "labextension", "*.pyc", ".ipynb_checkpoints", "_proc", "_docs")
    for d in ("nbs", "mlscale_sdk", "clusters", "templates"):
        shutil.copytree(ROOT / d, build / d, ignore=ignore)
    for nb in (build / "nbs").glob("*.ipynb"):
        if not nb.match(only):
            nb.unlink()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, build / f)
    (build / ".mlscale").mkdir()   # the examples' state stays in the build folder
    return build


def execute(build: Path, workers: int):
    "Run every notebook (cells flagged like `nbdev-test` skips them too) and keep its outputs in the staged copy."
    env = {**os.environ, "MLSCALE_HOME": str(build), "PYTHONPATH": str(ROOT)}
    # one fresh process per notebook, as a reader runs it: state one notebook leaves behind (a default Dask
    # client's config, imported modules) must not decide whether the next one runs
    failed = []
    for nb in sorted((build / "nbs").glob("*.ipynb")):
        t0 = time.perf_counter()
        r = subprocess.run([str(BIN / "nbdev-test"), "--save", str(nb.relative_to(build))], cwd=build, env=env)
        print(f"{nb.name}: {'ok' if r.returncode == 0 else 'FAILED'} in {time.perf_counter() - t0:.1f}s", flush=True)
        if r.returncode != 0:
            failed.append(nb.name)
    if failed:
        print(f"examples failed to run in {', '.join(failed)}: their pages have no outputs", file=sys.stderr)
    return not failed


def _proc_one(build: Path, nb: Path) -> str | None:
    "Process one notebook into `_proc/`; the error, if nbdev could not."
    code = f"from nbdev.serve import proc_nbs; proc_nbs(n_workers=0, file_glob={nb.name!r})"
    r = subprocess.run([sys.executable, "-c", code], cwd=build, capture_output=True, text=True)
    if r.returncode == 0:
        return None
    return "\n".join(
        l for l in r.stderr.splitlines() if l.startswith(("Exception:", "NameError", "KeyError", "ImportError"))
    )


def process(build: Path, workers: int) -> tuple[Path, dict]:
    "nbdev's own preprocessing into `_proc/` (`_quarto.yml`, `nbdev.yml`, `sidebar.yml`, show_doc of every export)."
    from concurrent.futures import ThreadPoolExecutor
    prep = ("import nbdev.doclinks; from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar; "
            "refresh_quarto_yml(); nbdev.doclinks._build_modidx(); nbdev_sidebar.__wrapped__()")
    subprocess.run([sys.executable, "-c", prep], cwd=build, check=True)
    nbs = sorted((build / "nbs").glob("*.ipynb"))   # one at a time, so one broken notebook does not hide the others
    with ThreadPoolExecutor(max(1, workers)) as ex:
        errors = dict(zip((nb.name for nb in nbs), ex.map(lambda nb: _proc_one(build, nb), nbs)))
    return build / "_proc", {k: v for k, v in errors.items() if v is not None}


def quarto() -> str | None:
    q = shutil.which("quarto") or shutil.which("quarto", path=str(BIN))
    return q


def render_quarto(build: Path, workers: int) -> Path:
    "The nbdev way: `nbdev-docs` (its Quarto render of `_proc/`)."
    env = {**os.environ, "PATH": f"{Path(quarto()).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(BIN / "nbdev-docs"), "--n-workers", str(workers)], cwd=build, env=env, check=True)
    return build / "_docs"


def _title(nb: dict, fallback: str) -> str:
    for c in nb["cells"]:
        if c["cell_type"] == "markdown" and (m := re.search(r"^#\s+(.+)$", "".join(c["source"]), re.M)):
            return m.group(1)
    return fallback


def _plain_cell(c: dict, keys: set) -> dict:
    "A cell as nbconvert wants it: nbformat's keys only, Quarto's `#|` directives applied (echo: false hides the "
    "input)."
    src = "".join(c["source"])
    c = {**{k: v for k, v in c.items() if k in keys}, "metadata": {}}
    if re.search(r"^#\|\s*echo:\s*false", src, re.M):
        c["metadata"] = {"tags": ["remove_input"]}
    c["source"] = "\n".join(l for l in src.splitlines() if not l.startswith("#|"))
    return c


def render_nbconvert(proc: Path, out: Path) -> Path:
    "Each processed notebook as an HTML page (nbconvert), and an index page with the sidebar's order."
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    out.mkdir(parents=True, exist_ok=True)
    pages = []
    for nbf in sorted(proc.glob("*.ipynb")):
        nb = json.loads(nbf.read_text())
        keys = {
            "code": {"cell_type", "id", "metadata", "source", "outputs", "execution_count"},
            "markdown": {"cell_type", "id", "metadata", "source", "attachments"},
            "raw": {"cell_type", "id", "metadata", "source"},
        }
        nb["cells"] = [_plain_cell(c, keys[c["cell_type"]]) for c in nb["cells"]]
        exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True)
        exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={"remove_input"}), enabled=True)
        body, _ = exporter.from_notebook_node(nbformat.reads(json.dumps(nb), as_version=4))
        (out / f"{nbf.stem}.html").write_text(body)
        pages.append((nbf.stem, _title(nb, nbf.stem)))
    links = "".join(f'<li><a href="{s}.html">{html.escape(t)}</a></li>' for s, t in pages)
    (out / "index.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>mlscale</title></head><body>"
        f"<h1>mlscale</h1><p>The SDK, one page per notebook.</p><ul>{links}</ul></body></html>"
    )
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", default=str(ROOT / "_docs"), help="where the site goes (default: _docs/)")
    ap.add_argument("--workers", type=int, default=1, help="notebooks executed and processed at once")
    ap.add_argument("--no-exec", action="store_true", help="do not execute the notebooks (pages without outputs)")
    ap.add_argument("--build", help="build in this folder and keep it (default: a temporary folder)")
    ap.add_argument("--only", default="*.ipynb", help="only the notebooks matching this glob (a partial site)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlscale-docs-") as d:
        if a.build:
            shutil.rmtree(a.build, ignore_errors=True)
        build = stage(Path(a.build or d).resolve(), a.only)
        ran = a.no_exec or execute(build, a.workers)
        proc, errors = process(build, a.workers)
        site = render_quarto(build, a.workers) if quarto() and not errors else render_nbconvert(proc, build / "_docs")
        dest = Path(a.dest).resolve()
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(site, dest)
    print(f"docs: {dest}/index.html ({'quarto' if quarto() else 'nbconvert; no quarto on PATH'})")
    for name, e in errors.items():
        print(f"== {name}: nbdev could not process it\n{e}", file=sys.stderr)
    if not ran:
        print("the examples failed to run (see above); the docs need their outputs", file=sys.stderr)
    if errors:
        sys.exit(
            f"nbdev could not process {', '.join(errors)}, so their pages are missing. nbdev runs every cell that "
            "imports something to render the API docs: keep imports in cells of their own, apart from example code, "
            "and make the names used in signatures importable in the notebook (e.g. `import dask.dataframe as dd` "
            "in a hidden cell when the module imports it under TYPE_CHECKING)"
        )
    if not ran:
        sys.exit(1)


if __name__ == "__main__":
    main()
