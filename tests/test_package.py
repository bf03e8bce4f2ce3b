"""The package as a whole: notebooks and generated code in step, clean notebooks, a light import, a CLI with help everywhere."""
import filecmp, json, os, shutil, subprocess, sys
from pathlib import Path
import pytest

from conftest import BIN, ROOT

HEAVY = ("dask", "distributed", "xgboost", "mlflow", "feast", "torch", "papermill", "pandas", "sqlalchemy")


def test_generated_library_matches_notebooks(tmp_path):
    "nbdev-export of nbs/ reproduces mlscale_sdk/ exactly (nobody edited generated code by hand)."
    for p in ("nbs", "mlscale_sdk"):
        shutil.copytree(ROOT / p, tmp_path / p, ignore=shutil.ignore_patterns("__pycache__", "labextension", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for f in (tmp_path / "mlscale_sdk").glob("*.py"):
        if f.name != "__init__.py":
            f.unlink()
    subprocess.run([str(BIN / "nbdev-export")], cwd=tmp_path, check=True, capture_output=True)
    ours = sorted(p.name for p in (ROOT / "mlscale_sdk").glob("*.py"))
    theirs = sorted(p.name for p in (tmp_path / "mlscale_sdk").glob("*.py"))
    assert ours == theirs, f"modules without a notebook or notebooks never exported: {set(ours) ^ set(theirs)}"
    differ = [n for n in ours if (ROOT / "mlscale_sdk" / n).read_text() != (tmp_path / "mlscale_sdk" / n).read_text()]
    assert not differ, f"mlscale_sdk/ is out of step with nbs/ for {differ}: run `make export` and commit (edit the notebooks, not the .py files)"


def test_notebooks_are_clean(tmp_path):
    "nbdev-clean would change nothing: no stray metadata, execution counts or kernel noise in nbs/."
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    subprocess.run([str(BIN / "nbdev-clean")], cwd=tmp_path, check=True, capture_output=True)
    dirty = [p.name for p in (ROOT / "nbs").glob("*.ipynb") if p.read_bytes() != (tmp_path / "nbs" / p.name).read_bytes()]
    assert not dirty, f"notebooks not clean: {dirty}: run `make export` (nbdev-clean) and commit"


def test_every_notebook_exports_a_module():
    for nb in (ROOT / "nbs").glob("[0-9]*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        assert any("#| default_exp" in "".join(c["source"]) for c in cells), f"{nb.name} has no default_exp"


def test_import_is_light_and_fast():
    code = ("import time, sys; t = time.perf_counter(); import mlscale_sdk, mlscale_sdk.config, mlscale_sdk.clusters, "
            "mlscale_sdk.cli; import mlscale_sdk.train, mlscale_sdk.tracking, mlscale_sdk.data; dt = time.perf_counter() - t; "
            f"print(dt); print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    times, heavy = [], None
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
        times.append(float(out[0])); heavy = out[1]
    assert heavy == "", f"import mlscale_sdk pulled in {heavy}"
    assert min(times) <= 0.5, f"import took {min(times):.2f}s (target <= 0.5s)"


def _commands(group, prefix=()):
    import click
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help():
    from click.testing import CliRunner
    from mlscale_sdk.cli import main
    cmds = list(_commands(main))
    assert ("cluster", "start") in cmds and ("demo",) in cmds
    for c in cmds:
        r = CliRunner().invoke(main, [*c, "--help"])
        assert r.exit_code == 0 and "Usage:" in r.output, (c, r.output)
        assert len(main.get_command(None, c[0]).help or "") > 10
    r = subprocess.run([str(BIN / "mlscale"), "--version"], capture_output=True, text=True, check=True)
    assert "mlscale" in r.stdout


def test_make_venv_is_idempotent():
    "A second `make venv` (as `make test` / `make demo` do first) installs nothing when pyproject.toml is unchanged."
    r = subprocess.run(["make", "-s", "venv"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "installing" not in r.stdout, r.stdout + r.stderr
