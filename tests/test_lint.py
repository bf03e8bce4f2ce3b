"""The generated library is linted and formatted (ruff, configured in pyproject.toml); formatting is applied to the
notebooks, where the code is written, and the generated modules follow."""
import subprocess, sys

import pytest

from conftest import BIN, ROOT

RUFF = [str(BIN / "ruff")] if (BIN / "ruff").exists() else [sys.executable, "-m", "ruff"]
FIX = ("fix the notebooks and re-export: `ruff check --fix nbs && ruff format nbs && nbdev-clean && nbdev-export`; "
       "what --fix cannot fix (long strings, unused names) is fixed by hand in the notebook")


def ruff(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*RUFF, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def modules():
    return sorted(p for p in (ROOT / "mlscale_sdk").rglob("*.py") if p.name != "_modidx.py" and "labextension" not in p.parts)


def _skeleton(code: str) -> list:
    "The code without blank lines and without nbdev's `__all__` statement (nbdev writes both its own way)."
    out, in_all = [], False
    for line in code.splitlines():
        if line.startswith("__all__ = "):
            in_all = not line.rstrip().endswith("]")
            continue
        if in_all:
            in_all = not line.rstrip().endswith("]")
            continue
        if line.strip():
            out.append(line)
    return out


def test_ruff_check_generated_code_and_notebooks():
    r = ruff("check", "--output-format", "concise", "mlscale_sdk", "nbs", "bench", "tools")
    assert r.returncode == 0, f"ruff check found problems ({FIX}):\n{r.stdout[-6000:]}{r.stderr[-2000:]}"


def test_notebooks_are_ruff_formatted():
    r = ruff("format", "--check", "nbs")
    assert r.returncode == 0, f"notebooks not formatted ({FIX}):\n{r.stdout[-4000:]}{r.stderr[-2000:]}"


def test_generated_code_is_ruff_formatted_apart_from_nbdevs_glue():
    "`ruff format` would change nothing in mlscale_sdk/ but the blank lines between cells and `__all__`."
    differ = []
    for p in modules():
        r = subprocess.run([*RUFF, "format", "--stdin-filename", str(p.relative_to(ROOT)), "-"], cwd=ROOT,
                           input=p.read_text(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        if _skeleton(r.stdout) != _skeleton(p.read_text()):
            differ.append(str(p.relative_to(ROOT)))
    assert not differ, f"generated modules whose notebooks are not ruff-formatted: {differ} ({FIX})"


def test_no_line_over_120_characters():
    "Lines of the generated code stay within 120 characters (nbdev's own `__all__` line aside)."
    long = [f"{p.relative_to(ROOT)}:{i}: {len(line)} characters"
            for p in modules() for i, line in enumerate(p.read_text().splitlines(), 1)
            if len(line) > 120 and not line.startswith("__all__ = ")]
    assert not long, "lines over 120 characters (split them in the notebook):\n" + "\n".join(long[:50])


@pytest.mark.parametrize("code, clean", [("x = 1; y = 2\n", False), ("x = 1\ny = 2\n", True)])
def test_semicolon_joined_statements_are_reported(tmp_path, code, clean):
    f = tmp_path / "m.py"
    f.write_text(code)
    r = subprocess.run([*RUFF, "check", "--config", str(ROOT / "pyproject.toml"), str(f)], capture_output=True, text=True)
    assert (r.returncode == 0) == clean and (clean or "E702" in r.stdout), r.stdout
