"""End to end in a real browser: Debian's Chromium (headless, via Playwright) against a real `jupyter lab`
with the installed mlscale extension. Screenshots of the panel go to tests/artifacts/."""
import os, sys, json, shutil, subprocess, time, urllib.request
from pathlib import Path
import nbformat, pytest
from conftest import free_port, wait_for

BIN = Path(sys.executable).parent
ART = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _ok(url):
    try: return urllib.request.urlopen(url, timeout=2).status == 200
    except Exception: return False


@pytest.fixture
def lab(project):
    port, token = free_port(), "e2e-token"
    env = {**os.environ, "MLSCALE_HOME": str(project)}
    p = subprocess.Popen([str(BIN / "jupyter"), "lab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
                          f"--ServerApp.root_dir={project}", f"--IdentityProvider.token={token}",
                          "--LabApp.news_url=", "--ContentsManager.allow_hidden=True", f"--LabApp.workspaces_dir={project / 'ws'}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
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
        pg = b.new_page(viewport={"width": 1400, "height": 900})
        pg.set_default_timeout(60_000)
        try: yield pg
        finally: b.close()


def shot(page, name):
    "Save a screenshot of the page, with Lab's 'Jupyter news?' toast dismissed when it shows."
    no = page.locator(".jp-toast-button", has_text="No")
    if no.count(): no.first.click()
    page.screenshot(path=str(ART / name))


def test_extension_listed_enabled():
    out = subprocess.run([str(BIN / "jupyter"), "labextension", "list"], capture_output=True, text=True)
    text = out.stdout + out.stderr
    line = [l for l in text.splitlines() if "mlscale-labextension" in l]
    assert line and "enabled" in line[0] and "OK" in line[0], text


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
    job.locator(".mlscale-open-output").first.click()
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
    if script == "test": assert "# fail 0" in r.stdout and "# pass 5" in r.stdout, r.stdout[-2000:]
