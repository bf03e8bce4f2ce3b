"""End to end in a real browser: Debian's Chromium (headless, via Playwright) against a real `jupyter lab`
with the installed mlscale extension. Screenshots of the panel go to tests/artifacts/."""
import os, re, sys, json, shutil, subprocess, time, urllib.request
from pathlib import Path
import nbformat, pytest
from conftest import free_port, wait_for

BIN = Path(sys.executable).parent
ART = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _ok(url):
    try: return urllib.request.urlopen(url, timeout=2).status == 200
    except Exception: return False


BUILT = Path(__file__).parents[1] / "mlscale_sdk" / "labextension"


def _this_build(project) -> list[str]:
    "Serve this checkout's built extension (first on the path wins) rather than whichever one the venv registered."
    if not (BUILT / "package.json").exists():
        return []
    d = project / "labextensions"
    d.mkdir(exist_ok=True)
    (d / "mlscale-labextension").symlink_to(BUILT, target_is_directory=True)
    return [f"--LabApp.extra_labextensions_path={d}"]


def _theme_settings(project, theme) -> list[str]:
    "A user-settings folder that selects the Lab theme (light or dark)."
    d = project / "lab-settings" / "@jupyterlab" / "apputils-extension"
    d.mkdir(parents=True, exist_ok=True)
    name = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}[theme]
    (d / "themes.jupyterlab-settings").write_text(json.dumps({"theme": name}))
    return [f"--LabApp.user_settings_dir={project / 'lab-settings'}"]


@pytest.fixture
def theme(request):
    return getattr(request, "param", "light")


@pytest.fixture
def lab(project, theme):
    port, token = free_port(), "e2e-token"
    env = {**os.environ, "MLSCALE_HOME": str(project)}
    extra = _this_build(project) + _theme_settings(project, theme)
    p = subprocess.Popen([str(BIN / "jupyter"), "lab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
                          f"--ServerApp.root_dir={project}", f"--IdentityProvider.token={token}",
                          "--LabApp.news_url=", "--ContentsManager.allow_hidden=True", f"--LabApp.workspaces_dir={project / 'ws'}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *extra],
                         env=env, stdout=open(project / "lab.log", "w"), stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ok(f"{base}/api/status?token={token}"), timeout=60, what="jupyter lab")
        yield base, token, project
    finally:
        p.terminate()
        try: p.wait(15)
        except subprocess.TimeoutExpired: p.kill()


@pytest.fixture
def page(lab):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (run .ci/install-system.sh)")
    from playwright.sync_api import sync_playwright
    ART.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                     "--disable-component-update", "--disable-sync", "--no-first-run"])
        pg = b.new_page(viewport={"width": 1280, "height": 800})
        pg.set_default_timeout(60_000)
        pg.console_errors = []
        pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
        pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
        try: yield pg
        finally: b.close()


def shot(page, name):
    "Save a screenshot of the page, with Lab's 'Jupyter news?' toast dismissed when it shows."
    no = page.locator(".jp-toast-button", has_text="No")
    if no.count():
        try: no.first.click(timeout=2000)
        except Exception: pass  # behind a modal dialog: it stays in the corner of the shot
    page.screenshot(path=str(ART / name))


def api_send(base, token, method, path, body=None):
    "Call the mlscale API with the token; the JSON answer (None for 204)."
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}/mlscale/api/{path}", data=data, method=method,
                                 headers={"Authorization": f"token {token}"})
    text = urllib.request.urlopen(req).read()
    return json.loads(text) if text else None


def api_get(base, token, path):
    req = urllib.request.Request(f"{base}/mlscale/api/{path}", headers={"Authorization": f"token {token}"})
    return json.loads(urllib.request.urlopen(req).read())


@pytest.mark.parametrize("theme", ["light", "dark"], indirect=True)
def test_promote_with_alert_email_and_rule(page, lab, theme):
    "The broken flow: Promote to job with an alert e-mail (and a metric rule) is accepted as the server's shape."
    base, token, project = lab
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell("rows = 10"); c.metadata["tags"] = ["parameters"]
    nb.cells = [c, nbformat.v4.new_code_cell("print(rows)")]
    nbformat.write(nb, project / "alerting.ipynb")
    page.goto(f"{base}/lab/tree/alerting.ipynb?reset&token={token}")
    page.locator(".mlscale-promote-button").first.click()
    dialog = page.locator(".jp-Dialog")
    try: dialog.locator("input[name=rows]").wait_for(timeout=30_000)
    except Exception: shot(page, f"promote-alert-FAILED-{theme}.png"); print(page.console_errors); raise
    dialog.locator("input[name=alertEmail]").fill("not-an-address")
    dialog.locator("button", has_text="Promote").click()
    page.locator('.jp-Dialog [data-error="alertEmail"]', has_text="not an address").wait_for()
    page.locator(".jp-Dialog .mlscale-error-general", has_text="need a fix").wait_for()
    ok = page.locator(".jp-Dialog button", has_text="Promote").bounding_box()
    assert ok and ok["y"] + ok["height"] <= 800, f"the Promote button is off screen: {ok}"
    shot(page, f"promote-alert-error-{theme}.png")
    page.locator(".jp-Dialog input[name=alertEmail]").fill("ops@example.com")
    page.locator(".jp-Dialog select[name=ruleKind]").select_option("metric")
    page.locator(".jp-Dialog input[name=ruleMetric]").fill("auc")
    page.locator(".jp-Dialog select[name=ruleOp]").select_option("<")
    page.locator(".jp-Dialog input[name=ruleThreshold]").fill("0.8")
    page.locator(".jp-Dialog input[name=ruleTarget]").fill("ops@example.com")
    shot(page, f"promote-alert-filled-{theme}.png")
    page.locator(".jp-Dialog button", has_text="Promote").click()
    page.locator(".jp-Dialog", has_text="Promoted").locator("button", has_text="Ok").click()
    spec = api_get(base, token, "jobs/alerting")["spec"]
    assert spec["on_failure"] == [{"email": ["ops@example.com"], "subject": None, "smtp_host": None,
                                   "smtp_port": None, "sender": None, "starttls": None}] or \
        [a.get("email") for a in spec["on_failure"]] in (["ops@example.com"], [["ops@example.com"]]), spec
    assert spec["alerts"][0]["metric"] == "auc" and spec["alerts"][0]["threshold"] == 0.8, spec
    assert page.console_errors == [], page.console_errors


@pytest.mark.parametrize("theme", ["light", "dark"], indirect=True)
def test_scale_typed_while_updates_arrive(page, lab, theme):
    "A worker count being typed survives the panel's polls (rows are updated in place), then scales the cluster."
    base, token, project = lab
    page.goto(f"{base}/lab?reset&token={token}")
    page.locator('.jp-SideBar.jp-mod-left li[data-id="mlscale-panel"]').click()
    panel = page.locator("#mlscale-panel")
    panel.locator("select.mlscale-profile").select_option("local")
    panel.locator("button", has_text="Start").click()
    cluster = panel.locator(".mlscale-cluster").first
    cluster.wait_for()
    page.wait_for_function("() => /[1-9]\\d* workers/.test(document.querySelector('#mlscale-panel .mlscale-workers')?.textContent || '')")
    n = cluster.locator("input.mlscale-n")
    n.click(); n.fill(""); page.keyboard.type("3")
    before = cluster.locator(".mlscale-idle").text_content()
    page.wait_for_timeout(9000)  # two polls at 4 s
    assert cluster.locator(".mlscale-idle").text_content() != before, "no update arrived while typing"
    assert n.input_value() == "3"
    assert page.evaluate("() => document.activeElement?.classList.contains('mlscale-n')"), "the typed input lost focus"
    assert panel.locator("select.mlscale-profile").input_value() == "local"
    shot(page, f"panel-scale-typed-{theme}.png")
    cluster.locator("button", has_text="Scale").click()
    page.wait_for_function("() => /3 workers/.test(document.querySelector('#mlscale-panel .mlscale-workers')?.textContent || '')",
                           timeout=90_000)
    shot(page, f"panel-scaled-{theme}.png")
    cluster.locator("button", has_text="Stop").click()
    panel.get_by_text("no clusters running").wait_for()
    assert page.console_errors == [], page.console_errors


@pytest.mark.parametrize("theme", ["light", "dark"], indirect=True)
def test_failed_run_started_here_is_a_lab_notification(page, lab, theme):
    "Run now from the panel on a notebook that raises: a Lab notification says it failed; its detail shows the error."
    base, token, project = lab
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nbformat.write(nb, project / "breaks.ipynb")
    api_send(base, token, "POST", "jobs", {"notebook": "breaks.ipynb"})
    page.goto(f"{base}/lab?reset&token={token}")
    page.locator('.jp-SideBar.jp-mod-left li[data-id="mlscale-panel"]').click()
    job = page.locator('#mlscale-panel .mlscale-job[data-name="breaks"]')
    job.wait_for()
    assert "on demand" in job.locator(".mlscale-schedule").text_content()
    job.locator("button", has_text="Run now").click()
    page.get_by_text("mlscale: run of 'breaks' failed").first.wait_for(timeout=180_000)
    shot(page, f"notification-run-failed-{theme}.png")
    job.locator("button", has_text="History").click()
    view = page.locator('.mlscale-job-view[data-name="breaks"]')
    row = view.locator('tr.mlscale-run[data-status="failed"]').first
    row.wait_for()
    assert "ValueError: boom" in row.locator(".mlscale-error-summary").text_content()
    row.click()
    detail = view.locator(".mlscale-run-detail")
    detail.locator(".mlscale-error-text", has_text="boom").wait_for()
    assert "attempt" in detail.text_content()
    shot(page, f"job-failed-run-detail-{theme}.png")
    errors = [e for e in page.console_errors if "boom" not in e]
    assert errors == [], errors


def test_extension_listed_enabled():
    out = subprocess.run([str(BIN / "jupyter"), "labextension", "list"], capture_output=True, text=True)
    text = out.stdout + out.stderr
    line = [l for l in text.splitlines() if "mlscale-labextension" in l]
    assert line and "enabled" in line[0] and "OK" in line[0], text


def _wait_run(base, token, run_id, timeout=150):
    "The run once it has ended (polled through the API)."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = api_get(base, token, f"runs/{run_id}")
        if r["status"] not in ("queued", "running"):
            return r
        time.sleep(1)
    raise TimeoutError(f"run {run_id} still {r['status']}")


def _two_model_versions():
    "A registered model 'scorer' with two versions (auc 0.9 and 0.7), v1 promoted to @champion by the SDK, as 'ada'."
    import numpy as np, pandas as pd, xgboost as xgb
    from mlscale_sdk import tracking
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(100, 2)), columns=["a", "b"])
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(X, label=(X.a > 0).astype(int)), 3)
    for auc in (0.9, 0.7):
        with tracking.start_run("scorer") as run:
            run.log_metric("auc", auc)
            run.log_metric("logloss", 1 - auc)
            tracking.log_xgboost_model(booster, X, registered_model_name="scorer")
    assert tracking.promote("scorer", 1, metric="auc", by="ada").promoted


@pytest.mark.parametrize("theme", ["light", "dark"], indirect=True)
def test_every_view(page, lab, theme):
    "Jobs list, job view (chart, run now with an override, pause, delete), models (metrics, history, promote)."
    base, token, project = lab
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell("rows = 10"); c.metadata["tags"] = ["parameters"]
    nb.cells = [c, nbformat.v4.new_code_cell("from mlscale_sdk.monitor import log_metrics\n"
                                             "log_metrics({'auc': 0.5 + rows / 100})")]
    nbformat.write(nb, project / "scored.ipynb")
    api_send(base, token, "POST", "jobs", {"notebook": "scored.ipynb", "schedule": "0 3 * * *"})
    first = _wait_run(base, token, api_send(base, token, "POST", "jobs/scored/run", {})["id"])
    assert first["status"] == "succeeded" and first["metrics"], first
    _two_model_versions()

    page.goto(f"{base}/lab?reset&token={token}")
    page.locator('.jp-SideBar.jp-mod-left li[data-id="mlscale-panel"]').click()
    panel = page.locator("#mlscale-panel")
    job = panel.locator('.mlscale-job[data-name="scored"]')
    job.wait_for()
    assert job.locator(".mlscale-schedule").text_content().strip() == "every day at 03:00 UTC"
    assert "in " in job.locator(".mlscale-next").text_content()
    model = panel.locator('.mlscale-model[data-name="scorer"]')
    model.wait_for()
    versions = model.locator("table.mlscale-versions")
    versions.locator("th", has_text="auc").wait_for()
    auc_row = versions.locator("tr", has=page.locator("th", has_text="auc")).text_content()
    assert "0.9" in auc_row and "0.7" in auc_row, auc_row  # v1 and v2 side by side
    model.locator("summary", has_text="promotion history").click()
    assert "promoted" in model.locator(".mlscale-history").text_content()
    assert model.locator(".mlscale-history li .mlscale-by").all_text_contents() == ["ada"]
    shot(page, f"panel-jobs-models-{theme}.png")

    # promote v2 (auc 0.7) over the champion v1 (auc 0.9): rejected, with the reasons shown
    model.locator("button", has_text="Promote").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select[name=version]").select_option("2")
    assert dialog.locator("input[name=metric]").input_value() == "auc"
    shot(page, f"model-promote-dialog-{theme}.png")
    dialog.locator("button", has_text="Promote").click()
    decision = page.locator('.jp-Dialog .mlscale-decision[data-decision="rejected"]')
    decision.wait_for()
    assert "does not beat" in decision.text_content()
    shot(page, f"model-promote-decision-{theme}.png")
    page.locator(".jp-Dialog button", has_text="Ok").click()
    page.wait_for_function("() => (document.querySelector('#mlscale-panel .mlscale-model[data-name=\"scorer\"] "
                           ".mlscale-history')?.textContent || '').includes('rejected')", timeout=30_000)
    # every decision listed, newest first, each with who made it: the Lab user (from the server's authentication)
    history = model.locator(".mlscale-history li")
    assert [history.nth(i).get_attribute("data-decision") for i in range(history.count())] == ["rejected", "promoted"]
    recorded = api_get(base, token, "mlflow/models/scorer")["promotions"]
    assert [p["by"] for p in recorded][1] == "ada" and recorded[0]["by"] not in ("ada", None, ""), recorded
    assert model.locator(".mlscale-history li .mlscale-by").all_text_contents() == [recorded[0]["by"], "ada"]
    shot(page, f"model-promotion-history-{theme}.png")

    # the job view: one run is one visible point; a run with an override adds the second
    job.locator("button", has_text="History").click()
    view = page.locator('.mlscale-job-view[data-name="scored"]')
    view.locator("svg.mlscale-chart circle.mlscale-point").first.wait_for()
    assert view.locator("svg.mlscale-chart circle.mlscale-point").count() == 1
    box = view.locator("svg.mlscale-chart circle.mlscale-point").bounding_box()
    assert box and box["width"] >= 6, box
    assert view.locator("svg.mlscale-chart .mlscale-axis-title", has_text="auc").count() == 1
    shot(page, f"job-view-one-run-{theme}.png")
    view.locator(".mlscale-runnow input[name=rows]").fill("30")
    view.locator(".mlscale-runnow button", has_text="Run now").click()
    view.locator('tr.mlscale-run[data-status="succeeded"]').nth(1).wait_for(timeout=150_000)
    view.locator("svg.mlscale-chart circle.mlscale-point").nth(1).wait_for(timeout=15_000)
    assert "rows=30" in view.locator("tr.mlscale-run").first.locator(".mlscale-params").text_content()
    runs = api_get(base, token, "jobs/scored/history")
    assert runs[0]["parameters"] == {"rows": 30} and runs[0]["metrics"]["auc"] == pytest.approx(0.8), runs[0]
    shot(page, f"job-view-two-runs-{theme}.png")
    view.locator("tr.mlscale-run .mlscale-open-output").first.click()  # the output notebook opens in Lab
    page.locator(".jp-NotebookPanel .jp-Cell", has_text="log_metrics").first.wait_for()
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Job scored").click()

    view.locator("button", has_text="Pause").click()
    view.locator(".mlscale-badge", has_text="paused").first.wait_for()
    assert api_get(base, token, "jobs/scored")["paused"] is True
    view.locator("button", has_text="Resume").click()
    view.locator("button", has_text="Pause").wait_for()
    view.locator("button", has_text="Delete").click()
    confirm = page.locator(".jp-Dialog", has_text="Delete job 'scored'?")
    confirm.wait_for()
    shot(page, f"job-delete-confirm-{theme}.png")
    confirm.locator("button", has_text="Delete").click()
    view.wait_for(state="detached")
    job.wait_for(state="detached", timeout=15_000)
    assert api_get(base, token, "jobs") == []
    assert page.console_errors == [], page.console_errors


@pytest.mark.slow
def test_panel_cluster_promote_run_output(page, lab):
    "The issue's walk-through: panel -> cluster with workers -> template notebook -> Promote dialog -> run now -> output -> model."
    base, token, project = lab
    shutil.copy(Path(__file__).parents[1] / "templates" / "retrain.ipynb", project / "retrain.ipynb")

    page.goto(f"{base}/lab?reset&token={token}")
    page.locator('.jp-SideBar.jp-mod-left li[data-id="mlscale-panel"]').click()
    panel = page.locator("#mlscale-panel")
    panel.locator("select.mlscale-profile").select_option("local")
    panel.locator("button", has_text="Start").click()
    cluster = panel.locator(".mlscale-cluster")
    cluster.first.wait_for()
    page.wait_for_function("() => /[1-9]\\d* workers/.test(document.querySelector('#mlscale-panel .mlscale-workers')?.textContent || '')")
    shot(page, "panel-cluster.png")
    cluster.first.locator("button", has_text="Stop").click()
    panel.get_by_text("no clusters running").wait_for()

    page.goto(f"{base}/lab/tree/retrain.ipynb?token={token}")
    page.locator(".mlscale-promote-button").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input[name=rows]").wait_for()
    # pre-filled from the template's `parameters` cell
    assert dialog.locator("input[name=rows]").input_value() == "20000"
    assert dialog.locator("input[name=model_name]").input_value() == "fraud-detector"
    # client-side validation shows inline and keeps the dialog open
    dialog.locator("input[name=rows]").fill("many")
    dialog.locator("button", has_text="Promote").click()
    page.locator('.jp-Dialog [data-error="rows"]', has_text="expected an integer").wait_for()
    # a server-side error (bad time zone) also shows inline
    page.locator(".jp-Dialog input[name=rows]").fill("15000")
    page.locator(".jp-Dialog input[name=timezone]").fill("Mars/Base")
    page.locator(".jp-Dialog button", has_text="Promote").click()
    page.locator(".jp-Dialog .mlscale-error-general", has_text="Mars/Base").wait_for()
    shot(page, "promote-dialog-error.png")
    page.locator(".jp-Dialog input[name=timezone]").fill("UTC")
    page.locator(".jp-Dialog input[name=schedule]").fill("0 3 * * *")
    page.locator(".jp-Dialog button", has_text="Promote").click()
    page.locator(".jp-Dialog", has_text="Promoted").locator("button", has_text="Ok").click()

    page.locator('.jp-SideBar.jp-mod-left li[data-id="mlscale-panel"]').click() if not panel.is_visible() else None
    job = panel.locator('.mlscale-job[data-name="retrain"]')
    job.wait_for()
    job.locator("button", has_text="Run now").click()
    job.locator(".mlscale-badge", has_text="succeeded").wait_for(timeout=240_000)
    job.locator("button", has_text="History").click()
    page.locator(".mlscale-job-view .mlscale-open-output").first.click()
    page.wait_for_timeout(1500); shot(page, "panel-job-history.png")
    page.locator(".jp-NotebookPanel", has_text="model version 1").wait_for()
    shot(page, "panel-job-output.png")
    # the model the run registered, with its champion alias, in the Models section
    model = panel.locator('.mlscale-model[data-name="fraud-detector"]')
    model.wait_for()
    page.wait_for_function("() => (document.querySelector('#mlscale-panel .mlscale-model[data-name=\"fraud-detector\"]')?.textContent || '').includes('champion')", timeout=30_000)
    assert "1 version(s)" in model.text_content()
    shot(page, "panel-models.png")
    runs = json.loads(urllib.request.urlopen(urllib.request.Request(f"{base}/mlscale/api/jobs/retrain/history",
                      headers={"Authorization": f"token {token}"})).read())
    assert runs[0]["status"] == "succeeded" and runs[0]["parameters"] == {"rows": 15000}


@pytest.mark.parametrize("script", ["test", "lint"])
def test_frontend_unit_tests_and_lint(script):
    ext = Path(__file__).parents[1] / "labextension"
    if not (ext / "node_modules").exists():
        pytest.skip("labextension/node_modules missing: `pip install -e .` builds the extension and installs them")
    r = subprocess.run([str(BIN / "jlpm"), script], cwd=ext, capture_output=True, text=True, timeout=180,
                       env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    if script == "test":  # every test the front end's test files declare ran and passed
        declared = sum(len(re.findall(r"^\s*(?:test|it)\(", f.read_text(), re.M))
                       for f in (ext / "src").glob("*.test.ts"))
        assert declared >= 17 and "# fail 0" in r.stdout and f"# pass {declared}\n" in r.stdout, r.stdout[-2000:]
