"""`mlscale demo` end to end in a fresh project, as `make demo` runs it: real cluster, SQLite MLflow, registry."""
import re

import pytest

from conftest import mlscale


def _summary(out: str) -> dict:
    "The summary block as {label: text}."
    block = out.split("== mlscale demo summary", 1)[1]
    return {l[:12].strip(): l[12:] for l in block.strip().splitlines() if l[:12].strip()}


@pytest.mark.slow
def test_demo_end_to_end_then_again(project):
    env = {"MLSCALE_HOME": str(project)}
    r = mlscale("demo", "--rows", "40000", "--workers", "2", "--rounds", "80", env=env, timeout=300)
    s = _summary(r.stdout)
    assert "local" in s["cluster"] and "2 workers" in s["cluster"] and "no GPU" in s["cluster"]
    assert s["data"].startswith("40,000 rows")
    auc = float(re.search(r"AUC ([0-9.]+)", s["model"]).group(1))
    assert auc > 0.75, s["model"]
    assert "fraud-detector v1: promoted to champion" in s["registry"]
    assert all(f"{stage} " in s["time"] for stage in ("cluster", "data", "features", "train", "track", "promote"))
    assert "mlflow ui --backend-store-uri sqlite:///" in s["MLflow UI"]
    for i in range(1, 7):
        assert f"[{i}/6]" in r.stdout   # every stage announced
    # what it left behind is real: the data set, the MLflow run, the alias
    from mlscale_sdk import tracking
    run_id = re.search(r"run ([0-9a-f]{32})", s["MLflow"]).group(1)
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["auc"] == pytest.approx(auc, abs=1e-4)
    assert run.data.tags["mlscale.cluster.profile"] == "local"
    champ = tracking.model_version("fraud-detector", alias="champion")
    assert str(champ.version) == "1" and champ.run_id == run_id
    assert len(tracking.client().get_metric_history(run_id, "eval_auc_curve")) >= 10   # the learning curve, per round

    # again: the data is reused, the same model is not better than the champion, so no promotion
    r2 = mlscale("demo", "--rows", "40000", "--workers", "2", "--rounds", "80", env=env, timeout=300)
    s2 = _summary(r2.stdout)
    assert "reusing 40,000 transactions" in r2.stdout
    assert "fraud-detector v2: NOT promoted" in s2["registry"] and "champion" in s2["registry"]
    assert str(tracking.model_version("fraud-detector", alias="champion").version) == "1"


def test_demo_bad_arguments_fail_clearly(project):
    r = mlscale("demo", "--rows", "10", check=False)
    assert r.returncode == 2 and "use at least 1000 rows" in r.stderr
    r = mlscale("demo", "--rows", "5000", "--profile", "no-such-profile", check=False, env={"MLSCALE_HOME": str(project)})
    assert r.returncode == 1 and "no-such-profile" in r.stderr and "Traceback" not in r.stderr
    assert "[1/6] cluster FAILED" in r.stdout
