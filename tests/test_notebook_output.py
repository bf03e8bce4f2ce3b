"""How mlscale looks in a notebook: its log lines are not error-styled in a kernel (stdout there, stderr in scripts),
progress bars are notebook widgets, and the `_repr_html_` cards take their colours from Lab's theme variables."""
import re, subprocess, sys
from datetime import datetime, timezone

import nbformat
import pytest

from conftest import ROOT


def _outputs(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def test_log_lines_in_a_kernel_are_stdout_not_stderr(project):
    "A notebook that starts a small cluster (run by papermill, as a job is): mlscale's lines are stdout streams."
    import papermill as pm

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(
            "from mlscale_sdk.clusters import start_cluster\n"
            "h = start_cluster('local', n_workers=1)"),
        nbformat.v4.new_code_cell("from mlscale_sdk.config import get_logger\nget_logger('test').info('hello from mlscale')"),
        nbformat.v4.new_code_cell(
            "from mlscale_sdk.features.engine import online_bar\nbar = online_bar(3, 'v'); bar.update(3); bar.close()\n"
            "import tqdm.notebook\nprint('widget bar:', isinstance(bar, tqdm.notebook.tqdm))"),
        nbformat.v4.new_code_cell("h.close()"),
    ])
    nbformat.validate(nb)
    src, out = project / "logs.ipynb", project / "logs-out.ipynb"
    nbformat.write(nb, src)
    pm.execute_notebook(str(src), str(out), kernel_name="python3", cwd=str(project), progress_bar=False,
                        execution_timeout=240)
    outs = _outputs(nbformat.read(out, as_version=4))
    stdout = "".join(o.get("text", "") for o in outs if o.get("output_type") == "stream" and o.get("name") == "stdout")
    stderr = "".join(o.get("text", "") for o in outs if o.get("output_type") == "stream" and o.get("name") == "stderr")
    assert "[mlscale] started cluster" in stdout and "[mlscale] hello from mlscale" in stdout, stdout
    assert "[mlscale]" not in stderr, stderr
    assert "widget bar: True" in stdout, stdout    # tqdm.auto: a widget bar in a kernel, not a text bar on stderr
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs)
    assert not [o for o in outs if o.get("output_type") == "error"]


def test_log_lines_in_a_script_are_stderr(project):
    "Outside a kernel the Unix convention holds: a command's stdout stays its result, its news goes to stderr."
    code = "from mlscale_sdk.config import get_logger; get_logger('x').info('news'); print('result')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "result\n" and "[mlscale] news" in r.stderr


# a colour or background that is set at all must come from Lab's theme (or be theme-neutral)
_COLOUR_RE = re.compile(r"(?<![\w-])(color|background(?:-color)?)\s*:\s*([^;'\"]+)")
_LIGHT_RE = re.compile(r"#fff\b|#ffffff\b|\bwhite\b|\bblack\b|#000\b|:\s*(red|green|blue|gray|grey|orange)\b", re.I)


def _check_themed(what: str, html: str):
    assert "var(--jp-" in html, f"{what}: no Lab theme variable in {html[:200]}"
    for prop, value in _COLOUR_RE.findall(html):
        v = value.strip()
        assert v.startswith("var(--jp-") or v in ("inherit", "transparent"), f"{what}: hard-coded {prop}: {v}"
    assert not _LIGHT_RE.search(html.split("data:image/png")[0]), f"{what}: hard-coded colour in {html[:300]}"


def _cards(project) -> dict:
    "The `_repr_html_` of one object of each kind mlscale shows (built from real parts, nothing started)."
    from mlscale_sdk import clusters, formatting
    from mlscale_sdk.config import settings
    from mlscale_sdk.jobs.records import JobRun
    from mlscale_sdk.monitor.actions import Alert
    from mlscale_sdk.tracking import PromotionDecision
    from mlscale_sdk.train.core import _html_table

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    runs = {s: JobRun(id=f"r-{s}", job="etl", version="v1", scheduled_for=None, attempt=1, status=s, started_at=now,
                      ended_at=now, error="boom" if s == "failed" else None, metrics={"auc": 0.9})
            for s in ("succeeded", "failed", "running", "interrupted", "queued")}
    cards = {f"run {s}": r._repr_html_() for s, r in runs.items()}
    cards["runs table"] = formatting.runs_html("etl", list(runs.values()), "auc")
    cards["settings"] = settings()._repr_html_()
    cards["profile"] = clusters.get_profile("local")._repr_html_()
    cards["kv table"] = formatting.kv_table_html("x", [("a", "1")])
    cards["train result"] = _html_table("XGBoost on Dask: y", [("rounds", 10)])
    for ok in (True, False):
        cards[f"alert ok={ok}"] = Alert(id=1, job="etl", kind="alert", rule="auc < 0.8", message="auc low",
                                        fired_at=now, actions=[{"action": "webhook", "ok": ok, "error": "x"}],
                                        ok=ok)._repr_html_()
    for p in (True, False):
        cards[f"promotion {p}"] = PromotionDecision(promoted=p, alias="champion", name="m", version="2",
                                                    reasons=["auc 0.9 >= 0.8"], metrics={"auc": 0.9})._repr_html_()
    return cards


def test_cards_use_lab_theme_variables(project):
    "Every card is drawn with Lab's theme variables: light and dark themes both look right; no white backgrounds."
    cards = _cards(project)
    for what, html in cards.items():
        _check_themed(what, html)
    assert "var(--jp-error-color1" in cards["run failed"] and "var(--jp-success-color1" in cards["run succeeded"]
    assert "var(--jp-error-color1" in cards["promotion False"] and "var(--jp-success-color1" in cards["alert ok=True"]


def test_feature_and_drift_cards_use_lab_theme_variables(project):
    "The feature view card and the drift report (computed by Dask on pandas frames) use the same theme."
    import numpy as np
    import pandas as pd
    from mlscale_sdk.features import display
    from mlscale_sdk.formatting import CARD_STYLE
    from mlscale_sdk.monitor.drift_stats import drift

    assert display._CARD == CARD_STYLE
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=500), "seg": rng.choice(list("ab"), 500)})
    cur = pd.DataFrame({"x": rng.normal(1, size=500), "seg": rng.choice(list("ab"), 500)})
    import dask
    with dask.config.set(scheduler="sync"):
        html = drift(ref, cur)._repr_html_()
    _check_themed("drift", html)


@pytest.mark.parametrize("bad", ["color:#fff", "background:white", "color: red", "background-color:#ffffff"])
def test_the_theme_check_catches_hard_coded_colours(bad):
    "The check above can fail: a card with a hard-coded colour is refused."
    with pytest.raises(AssertionError):
        _check_themed("bad", f"<div style='border:1px solid var(--jp-border-color2);{bad}'>x</div>")
