"""mlscale_sdk.tracking against real MLflow stores (SQLite files and a real `mlflow server`), no mocks."""
import json, os, signal, socket, subprocess, sys, textwrap, time, urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlscale_sdk import tracking
from mlscale_sdk.config import settings

from conftest import bare_version as _version

PY = sys.executable
BIN = Path(sys.executable).parent


def _clean_env(monkeypatch):
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID",
                "MLSCALE_JOB_ID", "MLSCALE_JOB_RUN_ID", "MLSCALE_NOTEBOOK", "JPY_SESSION_NAME", "MLSCALE_STATE_DIR",
                "MLSCALE_MLFLOW_TRACKING_URI", "MLSCALE_MLFLOW_ARTIFACTS", "MLSCALE_EXPERIMENT"):
        monkeypatch.delenv(var, raising=False)


def _reset():
    import mlflow
    while mlflow.active_run() is not None:
        mlflow.end_run()
    tracking.reset_cache()
    settings.cache_clear()


@pytest.fixture
def tproj(tmp_path, monkeypatch):
    "A fresh project in tmp_path/proj, with the current directory elsewhere (to catch stray ./mlruns)."
    proj, cwd = tmp_path / "proj", tmp_path / "cwd"
    proj.mkdir(); cwd.mkdir()
    _clean_env(monkeypatch)
    monkeypatch.setenv("MLSCALE_HOME", str(proj))
    monkeypatch.chdir(cwd)
    _reset()
    yield SimpleNamespace(root=proj, cwd=cwd, state=proj / ".mlscale")
    _reset()


@pytest.fixture
def count_batches(monkeypatch):
    "Count MlflowClient.log_batch calls and the metrics in each."
    from mlflow import MlflowClient
    calls = []
    orig = MlflowClient.log_batch
    def log_batch(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        calls.append(SimpleNamespace(metrics=len(metrics), params=len(params), tags=len(tags)))
        return orig(self, run_id, metrics=metrics, params=params, tags=tags, synchronous=synchronous)
    monkeypatch.setattr(MlflowClient, "log_batch", log_batch)
    return calls


# ---------------------------------------------------------------- store location

def test_import_is_light():
    code = "import sys, mlscale_sdk.tracking; print([m for m in ('mlflow','dask','xgboost','pandas') if m in sys.modules])"
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_defaults_land_under_state_dir(tproj):
    import mlflow, sqlite3
    uri = tracking.configure()
    assert uri == f"sqlite:///{tproj.state}/mlflow.db" == mlflow.get_tracking_uri() == mlflow.get_registry_uri()
    with tracking.start_run("defaults") as run:
        run.log_metric("x", 1.0)
        mlflow.log_text("hello", "notes/hello.txt")          # MLflow's fluent API works inside the block
    assert (tproj.state / "mlflow.db").exists()
    arts = list((tproj.state / "mlartifacts").rglob("hello.txt"))
    assert len(arts) == 1 and arts[0].read_text() == "hello"
    assert not (tproj.cwd / "mlruns").exists() and not (tproj.root / "mlruns").exists()
    exp = mlflow.get_experiment(run.experiment_id)
    assert exp.name == "mlscale" and exp.artifact_location.startswith(settings().mlflow_artifacts)
    # even MLflow's Default experiment points under .mlscale, not at ./mlruns
    assert mlflow.get_experiment("0").artifact_location.startswith(settings().mlflow_artifacts)
    assert sqlite3.connect(tproj.state / "mlflow.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert tracking.ui_command().startswith(f"mlflow ui --backend-store-uri sqlite:///{tproj.state}/mlflow.db --default-artifact-root file://")


def test_env_tracking_uri_wins(tproj, tmp_path, monkeypatch):
    from mlflow import MlflowClient
    other = tmp_path / "elsewhere" / "other.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    settings.cache_clear(); tracking.reset_cache()
    with tracking.start_run("env") as run:
        run.log_params({"a": 1})
        run.log_metric("m", 2.0)
    assert other.exists() and not (tproj.state / "mlflow.db").exists()
    r = MlflowClient(f"sqlite:///{other}").get_run(run.run_id)
    assert r.data.metrics == {"m": 2.0} and r.data.params == {"a": "1"} and r.info.status == "FINISHED"
    assert tracking.ui_command().startswith(f"mlflow ui --backend-store-uri sqlite:///{other}")


def test_ui_command_masks_store_passwords(tproj, monkeypatch):
    "A tracking store URL with a password: the printed command masks it (CLI --print-only too); reveal=True keeps it."
    from click.testing import CliRunner
    from mlscale_sdk.cli import main
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://ml:s3cr3t@db.example.org:5432/mlflow")
    monkeypatch.setenv("MLSCALE_MLFLOW_ARTIFACTS", "s3://ak:sk-s3cr3t@bucket/art")
    settings.cache_clear(); tracking.reset_cache()
    cmd = tracking.ui_command()
    assert "s3cr3t" not in cmd and "postgresql://ml:***@db.example.org:5432/mlflow" in cmd and "s3://ak:***@bucket/art" in cmd
    assert "ml:s3cr3t@db.example.org" in tracking.ui_command(reveal=True)
    out = CliRunner().invoke(main, ["mlflow-ui", "--print-only"])
    assert out.exit_code == 0 and "s3cr3t" not in out.output and "ml:***@db" in out.output, out.output
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:s3cr3t@mlflow.example.org")
    assert tracking.ui_command() == "python -m webbrowser 'https://user:***@mlflow.example.org'"


def test_reset_cache_undoes_mlflow_settings(tproj, monkeypatch):
    import mlflow
    uri = tracking.configure()
    # MLflow exports what it was told, for subprocesses
    assert os.environ["MLFLOW_TRACKING_URI"] == uri == mlflow.get_registry_uri()
    assert os.environ["MLFLOW_EXPERIMENT_ID"] == tracking.ensure_experiment()
    tracking.reset_cache()
    assert not any(k in os.environ for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"))
    assert mlflow.get_tracking_uri() != uri
    # a user's own MLFLOW_TRACKING_URI is left alone
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tproj.root}/mine.db")
    settings.cache_clear()
    tracking.configure(); tracking.reset_cache()
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tproj.root}/mine.db"


def test_named_experiment_and_reuse(tproj):
    from mlflow import MlflowClient
    e1 = tracking.ensure_experiment("fraud detection/v2")
    tracking.reset_cache()
    assert tracking.ensure_experiment("fraud detection/v2") == e1
    exp = MlflowClient(tracking.tracking_uri()).get_experiment(e1)
    assert exp.artifact_location == settings().mlflow_artifacts + "/fraud_detection_v2"
    with tracking.start_run(experiment="fraud detection/v2") as run:
        pass
    assert run.experiment_id == e1


# ---------------------------------------------------------------- batched logging

def test_batched_metrics_all_arrive(tproj, count_batches):
    with tracking.start_run("batched", params={"p%d" % i: i for i in range(150)}) as run:
        for step in range(2500):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"auc": 0.9, "acc": 0.8}, step=1)
        assert len(run._buf) == 502          # still buffered: nothing lost, nothing sent early
    c = tracking.client()
    hist = c.get_metric_history(run.run_id, "loss")
    assert len(hist) == 2500 and sorted(m.step for m in hist) == list(range(2500))
    data = c.get_run(run.run_id).data
    assert len(data.params) == 150 and data.metrics["auc"] == 0.9 and data.metrics["acc"] == 0.8
    metric_calls = [b for b in count_batches if b.metrics]
    assert [b.metrics for b in metric_calls] == [1000, 1000, 502]
    assert all(b.params <= 100 and b.tags <= 100 for b in count_batches)
    assert sum(b.params for b in count_batches) == 150
    assert len(count_batches) <= 6          # 3 metric batches + 2 param batches (+ the error-free end)


def test_explicit_flush_and_small_buffer(tproj, count_batches):
    with tracking.start_run("flush", flush_every=10) as run:
        for i in range(25): run.log_metric("m", i, step=i)
        assert len(run._buf) == 5
        run.flush()
        assert run._buf == []
        assert len(tracking.client().get_metric_history(run.run_id, "m")) == 25
    assert [b.metrics for b in count_batches if b.metrics] == [10, 10, 5]


def test_failure_keeps_buffered_metrics_and_marks_failed(tproj):
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start_run("fails") as run:
            for i in range(1500): run.log_metric("m", i, step=i)   # 1,000 sent, 500 buffered
            raise RuntimeError("boom")
    import mlflow
    assert mlflow.active_run() is None
    c = tracking.client()
    r = c.get_run(run.run_id)
    assert r.info.status == "FAILED" and r.info.end_time is not None
    assert len(c.get_metric_history(run.run_id, "m")) == 1500
    assert r.data.tags["mlscale.error"] == "RuntimeError: boom"


def test_bad_metric_fails_at_the_call(tproj):
    with tracking.start_run("bad") as run:
        with pytest.raises(ValueError, match="invalid metric/param name"): run.log_metric("a*b", 1)
        with pytest.raises(ValueError, match="must be a number"): run.log_metric("ok", "high")
        run.log_metric("ok", 3)
    assert tracking.client().get_run(run.run_id).data.metrics == {"ok": 3.0}
    with pytest.raises(RuntimeError, match="has ended"):      # not silently buffered forever
        run.log_metric("late", 1)


def test_nested_runs(tproj):
    with tracking.start_run("parent") as parent:
        with tracking.start_run("child", nested=True) as child:
            child.log_metric("c", 1)
        parent.log_metric("p", 1)
    c = tracking.client()
    assert c.get_run(child.run_id).data.tags["mlflow.parentRunId"] == parent.run_id
    assert c.get_run(parent.run_id).info.status == c.get_run(child.run_id).info.status == "FINISHED"


def test_run_repr_html(tproj):
    with tracking.start_run("shown") as run:
        run.log_metrics({"auc": 0.93}); run.log_param("depth", 6)
        html = run._repr_html_()
    assert "shown" in html and run.run_id in html and "auc" in html and "0.93" in html and "depth" in html
    assert f"#/experiments/{run.experiment_id}/runs/{run.run_id}" in html and "mlflow ui" in html
    assert run.info.status == "FINISHED"


# ---------------------------------------------------------------- tags

def _git(root, *args):
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


def test_automatic_tags(tproj, monkeypatch):
    _git(tproj.root, "init", "-q"); _git(tproj.root, "commit", "-q", "--allow-empty", "-m", "init")
    sha = subprocess.run(["git", "-C", str(tproj.root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    monkeypatch.setenv("MLSCALE_JOB_ID", "nightly-train")
    monkeypatch.setenv("MLSCALE_JOB_RUN_ID", "17")
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/u/proj/nbs/train.ipynb")
    cluster = SimpleNamespace(name="local-ab12", profile=SimpleNamespace(name="local"),
                              workers=lambda: {"tcp://127.0.0.1:1": {}, "tcp://127.0.0.1:2": {}})
    with tracking.start_run("tagged", cluster=cluster, tags={"team": "fraud", "mlscale.job_run_id": "override"}) as run:
        pass
    t = tracking.client().get_run(run.run_id).data.tags
    assert t["mlscale.git_commit"] == sha == t["mlflow.source.git.commit"]
    assert t["mlscale.source"] == t["mlflow.source.name"] == "/home/u/proj/nbs/train.ipynb"
    assert t["mlscale.cluster.profile"] == "local" and t["mlscale.cluster.workers"] == "2" and t["mlscale.cluster.name"] == "local-ab12"
    assert t["mlscale.job_id"] == "nightly-train" and t["mlflow.source.type"] == "JOB"
    assert t["mlscale.job_run_id"] == "override" and t["team"] == "fraud"     # explicit tags win


def test_tags_without_git_or_notebook(tproj):
    with tracking.start_run("plain") as run:
        pass
    t = tracking.client().get_run(run.run_id).data.tags
    assert "mlscale.git_commit" not in t and "mlscale.job_id" not in t and "mlscale.cluster.profile" not in t
    assert t["mlscale.source"] == os.path.abspath(sys.modules["__main__"].__file__) and t["mlflow.source.type"] == "LOCAL"


# ---------------------------------------------------------------- models

def test_xgboost_model_signature_register_load(tproj):
    import numpy as np, pandas as pd, xgboost as xgb, mlflow
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(500, 5)), columns=[f"f{i}" for i in range(5)])
    y = (X.f0 - X.f1 + rng.normal(scale=0.3, size=500) > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, xgb.DMatrix(X, label=y), 15)
    with tracking.start_run("xgb") as run:
        run.log_metric("auc", 0.9)
        info = tracking.log_xgboost_model(booster, X, registered_model_name="clf")
    assert info.registered_model_version == 1 and info.run_id == run.run_id
    assert info.signature.inputs.input_names() == list(X.columns)
    assert info.saved_input_example_info is not None
    assert list((tproj.state / "mlartifacts").rglob("input_example.json"))
    assert not (tproj.cwd / "mlruns").exists()
    d = tracking.promote("clf", 1, require={"auc": ">= 0.8"})
    assert d and d.reasons[-1] == "no current champion"
    model = tracking.load_model("clf")                        # by alias @champion
    pred = np.asarray(model.predict(X.head(50))).ravel()
    assert np.allclose(pred, booster.inplace_predict(X.head(50)))
    native = tracking.load_model("clf", version=1, flavor="xgboost")
    assert np.allclose(native.inplace_predict(X.head(50)), booster.inplace_predict(X.head(50)))
    mv = tracking.register_model(info.model_uri, "clf-copy")
    assert str(mv.version) == "1" and mv.name == "clf-copy"


# ---------------------------------------------------------------- promotion

def _champion(name, alias="champion"):
    from mlflow.exceptions import MlflowException
    try: return str(tracking.client().get_model_version_by_alias(name, alias).version)
    except MlflowException: return None


def _ptags(name, version, alias="champion"):
    t = tracking.client().get_model_version(name, version).tags
    return t.get(f"mlscale.promotion.{alias}.decision"), json.loads(t.get(f"mlscale.promotion.{alias}.reasons", "null"))


def test_promote_first_then_better(tproj):
    v1 = _version("m", auc=0.85)
    d1 = tracking.promote("m", v1, require={"auc": ">= 0.8"})
    assert d1.promoted and bool(d1) and _champion("m") == v1 and d1.champion_version is None
    assert "no current champion" in d1.reasons
    v2 = _version("m", auc=0.9)
    d2 = tracking.promote("m", v2, require={"auc": ">= 0.8"})
    assert d2 and _champion("m") == v2 and d2.champion_version == v1 and d2.champion_metrics == {"auc": 0.85}
    assert _ptags("m", v2)[0] == "promoted"
    assert "promoted" in d2._repr_html_() and f"v{v2}" in d2._repr_html_()


def test_promote_fails_threshold(tproj):
    v1 = _version("m", auc=0.85, logloss=0.3)
    tracking.promote("m", v1, require={"auc": ">= 0.8"})
    v2 = _version("m", auc=0.95, logloss=0.6)
    d = tracking.promote("m", v2, require={"auc": ">= 0.8", "logloss": "< 0.4"})
    assert not d and _champion("m") == v1
    decision, reasons = _ptags("m", v2)
    assert decision == "rejected" and reasons == d.reasons
    assert any("logloss = 0.6 fails < 0.4" in r for r in reasons)
    assert "rejected" in d._repr_html_()


def test_promote_worse_than_champion(tproj):
    v1 = _version("m", auc=0.9)
    tracking.promote("m", v1, require={"auc": ">= 0.8"})
    v2 = _version("m", auc=0.9)           # equal is not better
    v3 = _version("m", auc=0.85)
    for v in (v2, v3):
        d = tracking.promote("m", v, require={"auc": ">= 0.8"})
        assert not d and d.champion_version == v1 and _champion("m") == v1
        assert "does not beat @champion" in d.reasons[-1] and _ptags("m", v)[0] == "rejected"


def test_promote_lower_is_better_and_custom_alias(tproj):
    v1 = _version("m", rmse=2.0)
    tracking.promote("m", v1, alias="prod", compare_to="prod", require={"rmse": "<= 5"}, greater_is_better=False)
    v2 = _version("m", rmse=1.5)
    d = tracking.promote("m", v2, alias="prod", compare_to="prod", require={"rmse": "<= 5"}, greater_is_better=False)
    assert d and _champion("m", "prod") == v2 and _champion("m") is None
    assert _ptags("m", v2, "prod")[0] == "promoted"


def test_promote_missing_metric_is_a_failure(tproj):
    v1 = _version("m", auc=0.9)
    d = tracking.promote("m", v1, require={"auc": 0.8, "precision": "> 0.5"})
    assert not d and _champion("m") is None
    assert any("precision: missing" in r for r in d.reasons)


def test_promote_malformed_requirement_changes_nothing(tproj):
    v1 = _version("m", auc=0.9)
    for bad in ({"auc": "at least 0.8"}, {"auc": ">> 1"}, {"auc": None}, {"auc": "=> 0.8"}):
        with pytest.raises(ValueError, match="malformed requirement"):
            tracking.promote("m", v1, require=bad)
    with pytest.raises(ValueError, match="needs `require` or `metric`"):
        tracking.promote("m", v1)
    assert _champion("m") is None
    assert not any(k.startswith("mlscale.promotion") for k in tracking.client().get_model_version("m", v1).tags)


def test_promote_unknown_model_or_version(tproj):
    _version("m", auc=0.9)
    with pytest.raises(tracking.ModelNotFoundError, match="model 'm' has no version 7 \\(versions: 1\\)"):
        tracking.promote("m", 7, require={"auc": 0.8})
    with pytest.raises(tracking.ModelNotFoundError, match="no registered model named 'nope'"):
        tracking.promote("nope", 1, require={"auc": 0.8})
    with pytest.raises(tracking.ModelNotFoundError, match="has no alias @champion"):
        tracking.load_model("m")



def _kept(name, version):
    "The decision tags of a version (one per decision), as JSON."
    tags = tracking.client().get_model_version(name, version).tags
    return [json.loads(v) for k, v in sorted(tags.items()) if k.startswith(tracking.HISTORY_PREFIX)]


def test_every_decision_is_kept_with_who_made_it(tproj, monkeypatch):
    import getpass
    monkeypatch.delenv("MLSCALE_USER", raising=False)
    v1, v2 = _version("m", auc=0.9), _version("m", auc=0.85)
    assert tracking.promote("m", v1, require={"auc": ">= 0.8"}).by == getpass.getuser()
    monkeypatch.setenv("MLSCALE_USER", "ada")
    d1 = tracking.promote("m", v2, require={"auc": ">= 0.8"})
    d2 = tracking.promote("m", v2, require={"auc": ">= 0.8"}, by="bob")         # same version, same alias
    assert (d1.by, d2.by, bool(d1), bool(d2)) == ("ada", "bob", False, False) and d1.at < d2.at
    kept = _kept("m", v2)
    assert [(r["by"], r["alias"], r["decision"], r["compared_version"]) for r in kept] == [
        ("ada", "champion", "rejected", v1), ("bob", "champion", "rejected", v1)]
    assert kept[1]["reasons"] == d2.reasons and kept[1]["time"] == d2.at
    history = tracking.promotion_history("m")
    assert [(r["version"], r["decision"], r["by"]) for r in history] == [
        (v2, "rejected", "bob"), (v2, "rejected", "ada"), (v1, "promoted", getpass.getuser())]
    assert tracking.get_model("m")["promotions"] == history == tracking.list_models()[0]["promotions"]
    assert _ptags("m", v2) == ("rejected", d2.reasons)          # the latest-decision tags, as before
    assert tracking.client().get_model_version("m", v2).tags["mlscale.promotion.champion.by"] == "bob"
    assert tracking.promotion_history("m", alias="prod") == []
    with pytest.raises(tracking.ModelNotFoundError):
        tracking.promotion_history("nope")


def test_decisions_recorded_before_are_read_and_kept(tproj):
    "A version with only the tags an earlier mlscale wrote: listed, and still listed after a new decision."
    v1 = _version("m", auc=0.9)
    c = tracking.client()
    old = {"decision": "rejected", "reasons": json.dumps(["auc = 0.9 fails >= 0.95"]), "at": "2025-11-02T08:00:00+00:00",
           "compared_to": ""}
    for k, v in old.items():
        c.set_model_version_tag("m", v1, f"mlscale.promotion.champion.{k}", v)
    (before,) = tracking.promotion_history("m")
    assert before == {"version": v1, "alias": "champion", "decision": "rejected", "reasons": ["auc = 0.9 fails >= 0.95"],
                      "time": "2025-11-02T08:00:00+00:00", "by": None, "compared_version": None}
    d = tracking.promote("m", v1, require={"auc": ">= 0.8"}, by="ada")
    assert d and [r["by"] for r in _kept("m", v1)] == [None, "ada"]       # the older decision got a tag of its own
    history = tracking.promotion_history("m")
    assert [(r["decision"], r["by"]) for r in history] == [("promoted", "ada"), ("rejected", None)]
    assert history[1] == before


def test_a_bad_user_or_alias_records_nothing(tproj, monkeypatch):
    v1 = _version("m", auc=0.9)
    for bad in ("", "x" * 201, "eve\nadmin", "\x00"):
        with pytest.raises(ValueError, match="user"):
            tracking.promote("m", v1, require={"auc": 0.8}, by=bad)
    monkeypatch.setenv("MLSCALE_USER", "a" * 300)
    with pytest.raises(ValueError, match="invalid user name"):
        tracking.promote("m", v1, require={"auc": 0.8})
    monkeypatch.delenv("MLSCALE_USER")
    for bad in ("a" * 101, "9lives", "a.b", None):
        with pytest.raises(ValueError, match="invalid alias"):
            tracking.promote("m", v1, alias=bad, require={"auc": 0.8})
    assert not any(k.startswith("mlscale.promotion") for k in tracking.client().get_model_version("m", v1).tags)


def test_many_long_reasons_fit_the_tag_limit(tproj):
    "Hundreds of failed requirements with long names: every tag stays under the limit, with a marker for the rest."
    v1 = _version("m", auc=0.9)
    require = {f"metric_{i}_{'x' * 200}": ">= 0.5" for i in range(300)}
    d = tracking.promote("m", v1, require=require, compare_to=None, by="ada")
    assert not d and len(d.reasons) == 300
    tags = tracking.client().get_model_version("m", v1).tags
    assert all(len(v) <= tracking.MAX_TAG_VALUE for k, v in tags.items() if k.startswith("mlscale.promotion"))
    (kept,) = _kept("m", v1)
    assert kept["reasons"][0] == d.reasons[0] and "more reason(s) not recorded" in kept["reasons"][-1]
    assert _ptags("m", v1)[1] == kept["reasons"]
    (r,) = tracking.promotion_history("m")
    assert r["by"] == "ada" and r["reasons"] == kept["reasons"]


# ---------------------------------------------------------------- concurrency

CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from mlscale_sdk import tracking
    import mlflow                                   # pay the import before the barrier
    i, go = int(sys.argv[1]), Path(sys.argv[2])
    (go.parent / f"ready{i}").touch()
    while not go.exists(): time.sleep(0.005)
    with tracking.start_run(f"worker-{i}", params={"worker": i, "lr": 0.1}, flush_every=50) as run:
        for step in range(200):
            run.log_metric("loss", 1 / (step + 1), step=step)
    print("RUN", run.run_id)
""")


def test_concurrent_writers_on_fresh_store(tproj):
    """4 processes start on a store that does not exist yet: they race on schema creation, experiment
    creation and writes. All must finish with all their metrics and without 'database is locked'."""
    sync = tproj.root / "sync"; sync.mkdir()
    go = sync / "go"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([PY, "-c", CHILD, str(i), str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=tproj.cwd) for i in range(4)]
    try:
        deadline = time.monotonic() + 60
        while len(list(sync.glob("ready*"))) < 4:
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.02)
        assert not (tproj.state / "mlflow.db").exists()            # the store really is fresh
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None: p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "database is locked" not in err and "already exists" not in err, err[-3000:]
    run_ids = [line.split()[1] for out, _ in outs for line in out.splitlines() if line.startswith("RUN ")]
    assert len(set(run_ids)) == 4
    c = tracking.client()
    for rid in run_ids:
        r = c.get_run(rid)
        assert r.info.status == "FINISHED" and r.data.params["lr"] == "0.1"
        assert len(c.get_metric_history(rid, "loss")) == 200
    assert [e.name for e in c.search_experiments()].count("mlscale") == 1
    assert not (tproj.cwd / "mlruns").exists()


# ---------------------------------------------------------------- a real tracking server

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
                             "--artifacts-destination", str(tmp_path / "server-artifacts"),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200: break
            except OSError: pass
            assert time.monotonic() < deadline, "mlflow server did not come up:\n" + (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.3)
        yield SimpleNamespace(url=url, root=tmp_path)
    finally:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: pass
        try: proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait(5)
        log.close()


@pytest.mark.slow
def test_against_mlflow_server(tproj, mlflow_server, monkeypatch):
    from mlflow import MlflowClient
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    settings.cache_clear(); tracking.reset_cache()
    with tracking.start_run("remote", params={"a": 1}) as run:
        for i in range(1200): run.log_metric("m", i, step=i)
        import mlflow
        mlflow.log_text("via server", "note.txt")
    c = MlflowClient(mlflow_server.url)
    r = c.get_run(run.run_id)
    assert r.info.status == "FINISHED" and r.data.params == {"a": "1"}
    assert len(c.get_metric_history(run.run_id, "m")) == 1200
    assert c.get_experiment(run.experiment_id).name == "mlscale"
    assert list((mlflow_server.root / "server-artifacts").rglob("note.txt"))   # the server decided where
    assert not (tproj.state / "mlflow.db").exists() and not (tproj.state / "mlartifacts").exists()
    assert tracking.ui_command() == f"python -m webbrowser {mlflow_server.url}"
    assert run.link.startswith(mlflow_server.url + "/#/experiments/")


def test_categorical_xgboost_model_serves_plain_values(tproj, caplog):
    "MLflow's XGBoost pyfunc cannot take categorical columns; ours restores the categories (unseen -> missing)."
    import logging
    import numpy as np, pandas as pd, xgboost as xgb
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"amount": rng.gamma(2, 30, 800),
                      "channel": pd.Categorical(rng.choice(["atm", "online", "in_store"], 800), categories=["in_store", "online", "atm"])})
    y = ((X.channel == "online") & (X.amount > 60)).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                        xgb.DMatrix(X, label=y, enable_categorical=True), 20)
    with caplog.at_level(logging.WARNING), tracking.start_run("cat"):
        info = tracking.log_xgboost_model(booster, X, registered_model_name="cat")
    assert not [r for r in caplog.records if "Got error" in r.getMessage()]   # MLflow's serving-input check passed
    assert info.signature.inputs.input_names() == ["amount", "channel"] and info.saved_input_example_info is not None
    served = tracking.load_model("cat", version=1)
    plain = X.head(50).assign(channel=X.channel.head(50).astype(str))
    assert np.allclose(served.predict(plain), booster.inplace_predict(X.head(50)), atol=1e-6)
    # a channel never seen in training is treated as missing, not an error
    odd = plain.head(3).assign(channel="phone")
    assert np.asarray(served.predict(odd)).shape == (3,)
    native = tracking.load_model("cat", version=1, flavor="xgboost")
    assert isinstance(native, xgb.Booster) and np.allclose(native.inplace_predict(X.head(5)), booster.inplace_predict(X.head(5)))
