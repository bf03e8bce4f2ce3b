"""End to end: a Dask dashboard plot as a Lab pane, loaded through the Jupyter server's proxy (jupyter-server-proxy,
limited by mlscale to registered clusters) in a real `jupyter lab` and headless Chromium, while tasks run."""
import time
import pytest
from test_lab_e2e import ART, lab, page, shot, theme  # noqa: F401 (fixtures)

pytest.importorskip("jupyter_server_proxy")
pytest.importorskip("bokeh")

TASKS = """() => {
  const d = window.Bokeh && window.Bokeh.documents && window.Bokeh.documents[0];
  if (!d) return false;
  for (const m of d.all_models) if (m.data && m.data.duration && m.data.duration.length > 0) return true;
  return false;
}"""


@pytest.mark.parametrize("theme", ["light", "dark"], indirect=True)
def test_task_stream_pane_of_a_running_computation(page, lab, theme):
    "Start a cluster, keep it busy, open its task stream from the panel: the pane's iframe shows the Bokeh plot."
    from distributed import Client
    from mlscale_sdk import clusters
    base, token, project = lab
    h = clusters.start_cluster("local", n_workers=1, name="busy")
    client = Client(h.scheduler_address)
    try:
        futures = client.map(time.sleep, [0.2] * 600, pure=False)   # a minute or more of tasks on one worker
        page.goto(f"{base}/lab?reset&token={token}")
        page.locator('.jp-SideBar.jp-mod-left li[data-id="mlscale-panel"]').click()
        row = page.locator('#mlscale-panel .mlscale-cluster[data-name="busy"]')
        row.locator("button.mlscale-plot", has_text="Task stream").click()
        pane = page.locator(".mlscale-dashboard-pane")
        pane.wait_for()
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text="Task stream · busy").wait_for()
        src = pane.locator("iframe").get_attribute("src")
        assert "/proxy/" in src and src.endswith("/individual-task-stream"), src
        frame = pane.locator("iframe").element_handle().content_frame()
        try:
            page.wait_for_function("() => /\\/proxy\\//.test(document.querySelector('.mlscale-dashboard-pane iframe')"
                                   ".contentWindow.location.href)", timeout=30_000)
            assert "/proxy/" in frame.url, frame.url
            frame.wait_for_function(TASKS, timeout=60_000)       # the task stream's rectangles have data
            frame.locator("canvas").first.wait_for(timeout=30_000)  # and Bokeh drew them
        except Exception:
            shot(page, f"dashboard-task-stream-FAILED-{theme}.png"); print((project / "lab.log").read_text()[-3000:])
            raise
        page.wait_for_timeout(1500)   # a few more tasks drawn
        shot(page, f"dashboard-task-stream-{theme}.png")
        assert len(futures) == 600 and not all(f.done() for f in futures), "the computation ended before the shot"
        assert page.console_errors == [], page.console_errors
    finally:
        client.close(); h.close()
