"""`make docs` builds the documentation site from nbs/: every notebook becomes a page, every public name of every module
(its `__all__`) is on its notebook's page, and the examples' outputs are visible."""
import ast, html, os, re, subprocess, sys
from pathlib import Path

import pytest

from conftest import ROOT


def _text(page) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def _defined(tree) -> set:
    "Names a module defines itself (not those it imports to re-export)."
    out = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            out |= {t.id for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
    return out


def public_names() -> dict:
    "notebook stem -> (names the module defines, names it re-exports), from its `__all__`."
    out = {}
    for f in sorted((ROOT / "mlscale_sdk").rglob("*.py")):
        src = f.read_text()
        m = re.search(r"File to edit: \.\./(?:\.\./)*nbs/(.+?)\.ipynb", src)
        tree = ast.parse(src)
        names = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                      and getattr(n.targets[0], "id", None) == "__all__"), [])
        if m and names:
            own = _defined(tree)
            out[m.group(1)] = ([n for n in names if n in own], [n for n in names if n not in own])
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "The site `make test` built just before (MLSCALE_DOCS_SITE), or a fresh build."
    built = os.environ.get("MLSCALE_DOCS_SITE")
    if built and (Path(built) / "index.html").exists():
        return Path(built)
    dest = tmp_path_factory.mktemp("docs") / "_docs"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_docs.py"), "--dest", str(dest), "--workers", "2"],
                       cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, f"the docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return dest


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_notebook_is_a_page_linked_from_the_index(site):
    index = (site / "index.html").read_text()
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        assert (site / f"{nb.stem}.html").exists(), f"no page for {nb.name}"
        assert f"{nb.stem}.html" in index, f"the index does not link {nb.name}"


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_public_name_appears_on_its_page(site):
    "A module's own public names are on its notebook's page; names it re-exports (a package) somewhere in the site."
    everything = "\n".join(_text(p) for p in site.glob("*.html"))
    missing = {}
    for stem, (own, reexported) in public_names().items():
        text = _text(site / f"{stem}.html")
        if lost := [n for n in own if n not in text] + [n for n in reexported if n not in everything]:
            missing[stem] = lost
    assert not missing, (f"public names missing from the docs (nbdev documents functions and classes; show a constant "
                         f"or a click command with `#| exports`, or name it in the text): {missing}")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_api_docs_and_example_outputs_are_rendered(site):
    text = _text(site / "00c_errors.html")
    assert re.search(r"def format_validation_error\(\s*exc", text), "no rendered signature (show_doc) for an export"
    # the example's output (one line; the notebook's source writes it as two string literals)
    assert "unable to parse string as a number (got 'x'); rules[0].extra: unknown field" in text, "example outputs not shown"
