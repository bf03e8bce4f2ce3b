"""`mlscale demo` end to end in a fresh project, as `make demo` runs it: real cluster, SQLite MLflow, registry, then
the jobs promoted, the scheduler as its own process, /metrics, a drift alert and the retrain run it queues."""
import re

import pytest

from conftest import mlscale

NOISE = ("SADeprecationWarning", "integer column", "initialized by task", "deactivated due to stimulus",
         "experimental feature", "Creating initial MLflow database", "it/s]", "round/s]")


def _summary(out: str) -> dict:
    "The summary block as {label: text}."
    block = out.split("== mlscale demo summary", 1)[1]
    return {l[:12].strip(): l[12:] for l in block.strip().splitlines() if l[:12].strip()}


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two demos, each bounded by its own subprocess timeout
def test_demo_whole_loop_then_again(project):
    env = {"MLSCALE_HOME": str(project)}
    r = mlscale("demo", "--rows", "20000", "--workers", "2", "--rounds", "40", env=env, timeout=900)
    s, out = _summary(r.stdout), r.stdout + r.stderr
    # 1. the champion
    assert "local" in s["cluster"] and "2 workers" in s["cluster"]
    assert s["data"].startswith("20,000 rows") and s["reused"].startswith("nothing")
    auc = float(re.search(r"AUC ([0-9.]+)", s["model"]).group(1))
    assert auc > 0.75 and "fraud-detector v1: promoted to champion" in s["registry"]
    stages = ("cluster", "data", "features", "train", "track", "promote", "jobs", "scheduler", "runs", "metrics",
              "drift", "retrain", "stop")
    assert all(f" {stage} " in f" {s['time']}" for stage in stages), s["time"]
    assert all(f"[{i}/13]" in r.stdout for i in range(1, 14))
    for noise in NOISE:  # third-party lines a user cannot act on
        assert noise not in out, noise

    from mlscale_sdk import jobs as J, monitor, tracking
    # 2. two scheduled jobs, with cron, time zone, retries, timeout and rules
    rt, sc = J.get_job("retrain").spec, J.get_job("score").spec
    assert rt.schedule and rt.timezone == "Europe/Berlin" and rt.retries == 1 and rt.timeout
    assert rt.alerts[0]["metric"] == "auc" and sc.alerts[0]["drift"]["column"] == "amount"
    assert sc.alerts[0]["actions"] == [{"retrain": "retrain"}]
    # 3. run through the scheduler process, which the demo stopped
    runs = {n: J.history(n) for n in ("retrain", "score")}
    assert [x.status for x in runs["retrain"]] == ["succeeded"] * 2 and [x.status for x in runs["score"]] == ["succeeded"] * 2
    assert all("scheduler" in (x.executor or "") for rs in runs.values() for x in rs)
    assert J.scheduler_alive() is None and "stopped" in s["stop"]
    first = runs["retrain"][-1]
    assert first.mlflow_run_id and first.id in s["runs"] and first.output_path.endswith(".ipynb")
    # 4. metrics in the store and on /metrics, the drift alert, the retrain it queued and its decision
    assert monitor.run_metrics(first.id)["auc"] == pytest.approx(auc, abs=1e-3)
    assert "/metrics:" in r.stdout and 'mlscale_job_last_run_success{mlscale_job="retrain"} 1' in r.stdout
    drift_run = runs["score"][0]
    assert drift_run.parameters.get("shift") == 1.0
    assert monitor.run_metrics(drift_run.id)['drift_psi{column="amount"}'] > 0.2
    assert monitor.run_metrics(runs["score"][1].id)['drift_psi{column="amount"}'] < 0.2  # the batch as trained on
    (alert,) = monitor.recent_alerts(job="score")
    assert alert["run_id"] == drift_run.id and alert["rule"].startswith("amount-drift") and alert["actions"][0]["ok"]
    feedback = runs["retrain"][0]
    assert alert["actions"][0]["result"]["run_id"] == feedback.id and feedback.status == "succeeded"
    assert feedback.id in s["alert"] and feedback.id in s["retrain"]
    mv = [v for v in tracking.client().search_model_versions(f"run_id = '{feedback.mlflow_run_id}'")]
    assert mv and mv[0].tags["mlscale.promotion.champion.decision"] in ("promoted", "rejected")
    assert mv[0].tags["mlscale.promotion.champion.decision"] in s["champion"]
    block = r.stdout.split("== mlscale demo summary", 1)[1].splitlines()
    next_block = "\n".join(block[[l[:12].strip() for l in block].index("next"):])  # the label and its continuations
    assert "mlscale jobs list" in next_block and "mlflow ui --backend-store-uri" in next_block

    # again (the champion only): data and features reused and said so; the same model does not beat the champion
    r2 = mlscale("demo", "--rows", "20000", "--workers", "2", "--rounds", "40", "--no-jobs", env=env, timeout=600)
    s2 = _summary(r2.stdout)
    assert "reusing 20,000 transactions" in r2.stdout and "data (20,000" in s2["reused"]
    assert "NOT promoted" in s2["registry"] and "jobs" not in s2 and "[6/6]" in r2.stdout
    assert str(tracking.model_version("fraud-detector", alias="champion").version) == "1"
    r3 = mlscale("demo", "--rows", "20000", "--workers", "2", "--rounds", "40", "--no-jobs", env=env, timeout=600)
    assert "features (training frame, online store)" in _summary(r3.stdout)["reused"]


def test_demo_bad_arguments_fail_clearly(project):
    r = mlscale("demo", "--rows", "10", check=False)
    assert r.returncode == 2 and "use at least 1000 rows" in r.stderr
    env = {"MLSCALE_HOME": str(project)}
    r = mlscale("demo", "--timezone", "Mars/Olympus", check=False, env=env)
    assert r.returncode == 2 and "unknown time zone 'Mars/Olympus'" in r.stderr and "[1/" not in r.stdout
    r = mlscale("demo", "--shift", "0", check=False, env=env)
    assert r.returncode == 2 and "--shift" in r.stderr
    assert not (project / ".mlscale" / "data").exists()  # nothing built before the options are checked
    r = mlscale("demo", "--rows", "5000", "--profile", "no-such-profile", check=False, env=env)
    assert r.returncode == 1 and "no-such-profile" in r.stderr and "Traceback" not in r.stderr
    assert "[1/13] cluster FAILED" in r.stdout
