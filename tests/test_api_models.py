"""The typed contract: openapi.yaml is what `api_models.openapi()` makes of the models and the route table, the route
table is the server's, and every answer of a real server (with real jobs, runs, a Dask cluster, an MLflow model,
alerts and metrics behind it) fits its response model with no undocumented field."""
import asyncio, time

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter

from conftest import ROOT
from test_server import call, jp_root_dir, jp_server_config, make_nb  # noqa: F401 (fixtures)

pytest_plugins = ["pytest_jupyter.jupyter_server"]


def test_checked_in_openapi_yaml_is_generated_from_the_models():
    from mlscale_sdk import api_models
    text = (ROOT / "mlscale_sdk" / "openapi.yaml").read_text()
    assert text == api_models.openapi_yaml(), "run `python -m mlscale_sdk.api_models > mlscale_sdk/openapi.yaml`"
    doc = yaml.safe_load(text)
    assert doc["openapi"] == "3.1.0" and "Action" not in doc["components"]["schemas"]
    schema = doc["components"]["schemas"]["PromoteJob"]["properties"]["on_failure"]
    assert {"$ref": "#/components/schemas/EmailActionBody"} in schema["anyOf"][0]["items"]["anyOf"]


def test_the_route_table_is_the_servers():
    from mlscale_sdk import api_models, server
    served = {(t, m) for t, h in server.ROUTES for m in server.route_methods(h)}
    assert set(api_models.OPERATIONS) == served
    for (t, m), op in api_models.OPERATIONS.items():
        assert (op.body is not None) == (m == "post" and op.what != ""), (t, m)   # every body is named in messages
        assert op.response is not None or op.status == 204, (t, m)


def undocumented(x, where="") -> list:
    "Paths of fields a validated answer holds that its model does not declare."
    out = []
    if isinstance(x, BaseModel):
        out += [f"{where}.{k}" for k in (x.model_extra or {})]
        for k in type(x).model_fields:
            out += undocumented(getattr(x, k), f"{where}.{k}")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            out += undocumented(v, f"{where}[{i}]")
    elif isinstance(x, dict):
        for k, v in x.items():
            out += undocumented(v, f"{where}.{k}")
    return out


async def populate(project, call):
    "A job with a finished run, a running cluster, a registered model with a promotion, an alert and a metric."
    import numpy as np, pandas as pd, xgboost as xgb
    from mlscale_sdk import clusters, monitor, tracking
    make_nb(project / "nb.ipynb")
    code, job = await call("POST", "jobs", body={"notebook": "nb.ipynb", "name": "j1", "schedule": "0 3 * * *",
                                                 "on_failure": [{"email": "ops@example.com"}],
                                                 "alerts": [{"metric": "rows", "op": "<", "threshold": 1}]})
    assert code == 201, job
    code, run = await call("POST", "jobs/j1/run", body={"parameters": {"rows": 3}})
    assert code == 202, run
    deadline = time.monotonic() + 150
    while (r := (await call("GET", f"runs/{run['id']}"))[1])["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, r
        await asyncio.sleep(1)
    h = await asyncio.to_thread(clusters.start_cluster, "local", n_workers=1, name="c1")
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 2)), columns=["a", "b"])
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(X, label=(X.a > 0).astype(int)), 2)

    def log():
        with tracking.start_run("m") as mrun:
            mrun.log_metric("auc", 0.9)
            tracking.log_xgboost_model(booster, X, registered_model_name="m")
        import os
        os.environ.update(MLSCALE_JOB_ID="j1", MLSCALE_JOB_RUN_ID=run["id"])
        try:
            monitor.log_metrics({"rows": 5.0}, mlflow=False)
        finally:
            os.environ.pop("MLSCALE_JOB_ID"), os.environ.pop("MLSCALE_JOB_RUN_ID")
        monitor.fire("j1", "failure", "[mlscale] job j1 failed", [], kind="failure")
    await asyncio.to_thread(log)
    code, d = await call("POST", "mlflow/models/m/promote", body={"version": 1, "metric": "auc"})
    assert code == 200 and d["promoted"], d
    return h, run["id"]


async def test_every_answer_fits_its_response_model(project, call):
    from mlscale_sdk import api_models
    h, run_id = await populate(project, call)
    try:
        paths = {"/jobs/{name}": "jobs/j1", "/jobs/{name}/history": "jobs/j1/history", "/runs/{run_id}": f"runs/{run_id}",
                 "/runs/{run_id}/output": f"runs/{run_id}/output", "/mlflow/models/{name}": "mlflow/models/m",
                 "/monitor/metrics/{job}": "monitor/metrics/j1", "/monitor/metrics/{job}/{metric}": "monitor/metrics/j1/rows"}
        params = {"/notebooks/parameters": {"path": "nb.ipynb"}}
        wrong, seen = [], {}
        for (template, method), op in api_models.OPERATIONS.items():
            if method != "get":
                continue
            code, out = await call("GET", paths.get(template, template), params=params.get(template))
            assert code == 200, (template, out)
            assert out, f"GET {template} answered an empty {out!r}: the check would prove nothing"
            seen[template] = out
            wrong += [f"GET {template}: {w}" for w in undocumented(TypeAdapter(op.response).validate_python(out))]
        assert not wrong, "answers with fields their model does not declare:\n" + "\n".join(wrong)
        assert seen["/jobs"][0]["last_run"]["status"] == "succeeded" and seen["/clusters"][0]["workers"] == 1
        assert seen["/mlflow/models"][0]["versions"][0]["aliases"] == ["champion"]
        # the answers of POST routes too
        code, out = await call("POST", "clusters/c1/scale", body={"n": 1})
        assert code == 200 and undocumented(api_models.ScaledOut.model_validate(out)) == []
        code, out = await call("POST", "jobs/j1/pause")
        assert code == 200 and undocumented(api_models.JobOut.model_validate(out)) == [] and out["paused"]
    finally:
        await asyncio.to_thread(h.close)


async def test_a_bad_body_answers_the_message_of_each_field(project, call):
    make_nb(project / "nb.ipynb")
    body = {"notebook": "nb.ipynb", "retries": -1, "on_failure": [{"email": "nope"}],
            "alerts": [{"metric": "auc", "op": "=", "threshold": 1}]}
    code, out = await call("POST", "jobs", body=body)
    assert code == 400 and set(out["fields"]) == {"retries", "on_failure[0]", "alerts[0].op"}, out
    assert "not an email address" in out["fields"]["on_failure[0]"] and "promoting a notebook" in out["error"]
    from mlscale_sdk.api_models import ErrorOut
    assert undocumented(ErrorOut.model_validate(out)) == []
    code, out = await call("POST", "clusters/x/scale", body={"n": -1})
    assert code == 400 and list(out["fields"]) == ["n"], out
    code, jobs = await call("GET", "jobs")
    assert jobs == []
