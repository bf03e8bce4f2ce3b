"""ipywidgets views: live widgets over real clusters and job runs, text when there is no front end."""
import pytest, nbformat
from pathlib import Path


def test_widgets_import_light_and_text_repr(project):
    from mlscale_sdk import widgets
    tp = widgets.TrainingProgress(5, description="fit")
    assert repr(tp) == "fit: 0/5"
    tp.update(2, loss=0.5)
    assert repr(tp) == "fit: 2/5 loss=0.5" and tp.bar.value == 2
    # a widget still renders in Lab: its mimebundle carries the widget view and the text fallback
    bundle = tp._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and bundle["text/plain"] == "fit: 2/5 loss=0.5"


@pytest.mark.slow
def test_cluster_control_lists_scales_and_stops_a_cluster_from_code(project):
    from mlscale_sdk import clusters, widgets
    cc = widgets.ClusterControl(profile="local")
    assert repr(cc) == "no clusters running" and cc.profile.value == "local"
    h = clusters.start_cluster("local", n_workers=1, name="wid")
    try:
        cc.refresh()
        assert list(cc.target.options) == ["wid"] and repr(cc).startswith("wid [local] workers=1 ")
        cc.n.value = 2; cc.target.value = "wid"
        cc.scale_btn.click()
        assert "scaled" in cc.message.value, cc.message.value
        h.wait_for_workers(2, 60)
        cc.refresh(); assert "workers=2" in repr(cc)
        cc.stop_btn.click()
        assert "stopped" in cc.message.value and repr(cc) == "no clusters running"
        cc.stop_btn.click()   # nothing selected any more: the error shows in the widget, nothing raises
        assert "jp-error-color1" in cc.message.value
    finally:
        h.close()


@pytest.mark.slow
def test_job_progress_shows_runs_and_metric(project):
    from mlscale_sdk import jobs, widgets
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell("rows = 1"); c.metadata["tags"] = ["parameters"]
    nb.cells = [c, nbformat.v4.new_code_cell("print(rows)")]
    p = Path(project) / "w.ipynb"; nbformat.write(nb, p)
    jobs.promote("w.ipynb", name="w")
    jp = widgets.JobProgress("w")
    assert repr(jp) == "job w: no runs yet"
    run = jobs.run_now("w", wait=True, timeout=150)
    assert run.status == "succeeded", run.error
    jp.btn.click()
    assert repr(jp).splitlines()[1].split()[:2] == [run.id, "succeeded"]
    assert "succeeded" in jp.html.value
    with pytest.raises(LookupError):
        widgets.JobProgress("nope")
