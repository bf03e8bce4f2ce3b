"""The Jupyter server extension: a real jupyter_server (pytest-jupyter) with the extension loaded from config,
real SDK managers behind it (state store, detached job runner with papermill, MLflow store, Dask cluster)."""
import asyncio, json, os, re, subprocess, time
from pathlib import Path
import nbformat
import pytest
import yaml
from jupyter_server.auth import Authorizer, IdentityProvider, User
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from conftest import BIN, ROOT, bare_version as _bare_version

pytest_plugins = ["pytest_jupyter.jupyter_server"]

API = "mlscale/api"


@pytest.fixture
def jp_root_dir(project):
    "The server's root is the mlscale project, so notebook paths line up."
    return project


class DenyAll(Authorizer):
    "An Authorizer that denies everything and records what it was asked."
    asked = []

    def is_authorized(self, handler, user, action, resource):
        DenyAll.asked.append((handler.request.method, action, resource))
        return False


class NamedUser(IdentityProvider):
    "The server's token authenticates as the user 'ada' (jupyter_server's own makes an anonymous one per request)."

    def generate_anonymous_user(self, handler):
        return User("ada", name="Ada Lovelace")


@pytest.fixture
def jp_server_config(request):
    cfg = {"ServerApp": {"jpserver_extensions": {"mlscale_sdk": True}}}
    if request.node.get_closest_marker("deny_all"):
        cfg["ServerApp"]["authorizer_class"] = DenyAll
    if request.node.get_closest_marker("named_user"):
        cfg["ServerApp"]["identity_provider_class"] = NamedUser
    return cfg


def make_nb(path, params="rows = 10  # rows\nlabel = 'x'", body="print(label, rows)"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell(params); c.metadata["tags"] = ["parameters"]
    nb.cells = [c, nbformat.v4.new_code_cell(body)]
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def call(jp_fetch):
    "Call the API with the server's token; returns (status, JSON or None) without raising on 4xx/5xx."
    async def go(method, path, body=None, params=None):
        kw = {"method": method, "raise_error": False, "params": params}
        if body is not None: kw["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method in ("POST", "PUT"): kw["body"] = b""
        r = await jp_fetch(API, *path.strip("/").split("/"), **kw)
        return r.code, (json.loads(r.body) if r.body else None)
    return go


# ---------------------------------------------------------------- the API description and routes

def test_openapi_parses_and_documents_every_route():
    from mlscale_sdk import server
    doc = yaml.safe_load((ROOT / "mlscale_sdk" / "openapi.yaml").read_text())
    assert doc["openapi"].startswith("3.")
    for template, handler in server.ROUTES:
        assert template in doc["paths"], f"{template} missing from openapi.yaml"
        methods = server.route_methods(handler)
        assert methods, template
        for m in methods:
            assert m in doc["paths"][template], f"{m.upper()} {template} missing from openapi.yaml"
    assert set(doc["paths"]) == {t for t, _ in server.ROUTES}, "openapi.yaml documents routes that do not exist"
    refs = {r.split("/")[-1] for r in json.dumps(doc).split('"$ref": "')[1:] for r in [r.split('"')[0]]}
    comps = {k for section in doc["components"].values() for k in section}
    assert refs <= comps, f"dangling $refs: {refs - comps}"


# ---------------------------------------------------------------- authentication

async def test_no_token_is_403(jp_serverapp, jp_base_url, jp_http_port, call):
    from mlscale_sdk import server
    client = AsyncHTTPClient()
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}{API}"
    families = set()
    for template, handler in server.ROUTES:
        path = template.replace("{name}", "x").replace("{run_id}", "r").replace("{job}", "j").replace("{metric}", "m")
        for m in server.route_methods(handler):
            kw = {"method": m.upper(), "raise_error": False}
            if m in ("post", "put"): kw["body"] = "{}"
            r = await client.fetch(base + path, **kw)
            assert r.code == 403, f"{m.upper()} {path} without a token answered {r.code}"
            families.add(template.split("/")[1])
    assert families == {"clusters", "jobs", "runs", "notebooks", "mlflow", "monitor"}
    # with the token the same server answers
    code, out = await call("GET", "jobs")
    assert code == 200 and out == []


def example_path(template):
    return template.replace("{name}", "x").replace("{run_id}", "r").replace("{job}", "j").replace("{metric}", "m")


@pytest.mark.deny_all
async def test_a_denying_authorizer_is_403_on_every_route(project, call):
    "The deployment's Authorizer decides: GET asks for read, POST and DELETE for write, on mlscale:<family>."
    from mlscale_sdk import server
    make_nb(project / "nb.ipynb")
    DenyAll.asked.clear()
    expected = []
    for template, handler in server.ROUTES:
        for m in server.route_methods(handler):
            body = {"notebook": "nb.ipynb", "name": "j"} if template == "/jobs" and m == "post" else None
            code, out = await call(m.upper(), example_path(template), body=body)
            assert code == 403 and "not authorized" in out["error"], (m, template, code, out)
            expected.append((m.upper(), "read" if m == "get" else "write", "mlscale:" + template.split("/")[1]))
    assert DenyAll.asked == expected
    assert not (project / ".mlscale" / "jobs").exists() or not any((project / ".mlscale" / "jobs").iterdir())


# ---------------------------------------------------------------- bad input and unknown things

async def test_one_body_parser_limits_and_fields(project, call):
    "Deep nesting, huge bodies, non-finite numbers, non-string names, colliding and unknown fields: 4xx, not 500."
    make_nb(project / "nb.ipynb")
    cases = [
        ("POST", "jobs/x/run", '{"parameters": ' + "[" * 40 + "]" * 40 + "}", 400, "nested too deep"),
        ("POST", "jobs", "[" * 100_000 + "]" * 100_000, 400, "nested too deep"),
        ("POST", "jobs", json.dumps({"notebook": "nb.ipynb", "tags": {"x": "a" * (2 << 20)}}), 413, "over 1048576 bytes"),
        ("POST", "jobs", '{"notebook": "nb.ipynb", "retry_delay": NaN}', 400, "NaN is not a number"),
        ("POST", "jobs", '{"notebook": "nb.ipynb", "timeout": 1e999}', 400, "is not a number"),
        ("POST", "jobs", {"notebook": "nb.ipynb", "name": 5}, 400, "name must be a string or null, not an integer"),
        ("POST", "jobs", {"notebook": 5}, 400, "notebook must be a string"),
        ("POST", "jobs", {"notebook": "nb.ipynb", "retries": True}, 400, "retries must be an integer"),
        ("POST", "jobs", {"notebook": "nb.ipynb", "spec": {}}, 400, "unknown field(s) for promoting a notebook: 'spec'"),
        ("POST", "jobs", '{"notebook": "nb.ipynb", "name": "\\ud800"}', 400, "not valid Unicode"),
        ("POST", "clusters", {"profile": "local", "name": 5}, 400, "name must be a string"),
        ("POST", "clusters", {"profile": "local", "options": {"name": "x"}}, 400, "options may not set 'name'"),
        ("POST", "clusters", {"profile": "local", "options": {"profile": "x"}}, 400, "options may not set 'profile'"),
        ("POST", "clusters", {"profile": "no-such-profile", "bogus": 1}, 400, "unknown field(s) for starting a cluster: 'bogus'"),
        ("POST", "clusters/x/scale", {"n": 1, "extra": 2}, 400, "unknown field(s)"),
        ("POST", "clusters/x/scale", {"n": "2"}, 400, "n must be an integer"),
        ("POST", "jobs/x/pause", {"force": True}, 400, "unknown field(s)"),
        ("POST", "jobs/x/run", {"params": {}}, 400, "unknown field(s) for running a job: 'params'"),
        ("POST", "mlflow/models/m/promote", {"version": True}, 400, "version must be an integer or a string"),
        ("POST", "mlflow/models/m/promote", {}, 400, "needs the field(s) version"),
        ("POST", "jobs", "1" * 5000, 400, "not valid JSON"),
        ("POST", "jobs", b"\xff\xfe\x00", 400, "not valid JSON"),
        ("POST", "jobs", "null", 400, "must be a JSON object"),
    ]
    wrong = []
    for method, path, body, status, msg in cases:
        code, out = await call(method, path, body=body)
        if not (code == status and msg in out["error"]):
            wrong.append((method, path, str(body)[:60], code, out and str(out)[:200]))
    for path, params, msg in [("jobs", {"bogus": "1"}, "unknown query argument(s): 'bogus'"),
                              ("jobs/x/history", {"limit": "9" * 40}, "limit must be an integer"),
                              ("monitor/alerts", {"limit": "1", "jobs": "x"}, "unknown query argument(s): 'jobs'")]:
        code, out = await call("GET", path, params=params)
        if not (code == 400 and msg in out["error"]):
            wrong.append(("GET", path, params, code, out and str(out)[:200]))
    assert not wrong, "\n".join(map(str, wrong))
    code, out = await call("GET", "jobs")
    assert code == 200 and out == [], "a rejected request wrote a job"


async def test_repeated_query_argument_is_400(jp_fetch, jp_base_url, jp_http_port, jp_auth_header):
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}{API}/jobs/x/history?limit=1&limit=2"
    r = await AsyncHTTPClient().fetch(url, headers=jp_auth_header, raise_error=False)
    assert r.code == 400 and "more than once" in json.loads(r.body)["error"]

async def test_bad_input_is_400_and_nothing_written(project, call):
    make_nb(project / "nb.ipynb")
    code, out = await call("POST", "jobs", body=b"{not json")
    assert code == 400 and "not valid JSON" in out["error"]
    code, out = await call("POST", "jobs", body=[1, 2])
    assert code == 400 and "JSON object" in out["error"]
    code, out = await call("POST", "jobs", body={"notebook": "nb.ipynb", "schedule": "61 * * * *"})
    assert code == 400 and "61" in out["error"], out
    code, out = await call("POST", "jobs", body={"notebook": "nb.ipynb", "no_such_field": 1})
    assert code == 400 and "no_such_field" in out["error"]
    code, out = await call("POST", "jobs", body={"notebook": "../outside.ipynb"})
    assert code == 400 and "outside the server root" in out["error"]
    code, out = await call("POST", "jobs", body={"notebook": "/etc/hosts"})
    assert code == 400 and "outside the server root" in out["error"]
    code, out = await call("GET", "notebooks/parameters", params={"path": "../../etc/passwd"})
    assert code == 400 and "outside the server root" in out["error"]
    code, out = await call("POST", "clusters", body={"profile": "no-such-profile"})
    assert code == 400 and "no-such-profile" in out["error"]
    code, out = await call("GET", "jobs/x/history", params={"limit": "lots"})
    assert code == 400 and "limit" in out["error"]
    code, out = await call("GET", "jobs")
    assert code == 200 and out == [], "a rejected promote wrote a job"
    assert not (project / ".mlscale" / "jobs").exists() or not any((project / ".mlscale" / "jobs").iterdir())


async def test_unknown_things_are_404(project, call):
    for path in ("jobs/nope", "jobs/nope/history", "runs/nope", "runs/nope/output", "mlflow/models/nope"):
        code, out = await call("GET", path)
        assert code == 404 and "nope" in out["error"], (path, code, out)
    for path in ("jobs/nope/run", "jobs/nope/pause", "jobs/nope/resume", "clusters/nope/scale"):
        code, out = await call("POST", path, body={"n": 1} if "scale" in path else {})
        assert code == 404 and "nope" in out["error"], (path, code, out)
    code, out = await call("DELETE", "jobs/nope")
    assert code == 404
    code, out = await call("DELETE", "clusters/nope")
    assert code == 404 and "no running cluster" in out["error"]
    code, out = await call("GET", "notebooks/parameters", params={"path": "missing.ipynb"})
    assert code == 404
    code, out = await call("POST", "mlflow/models/nope/promote", body={"version": 1, "require": {"auc": ">= 0.5"}})
    assert code == 404 and "nope" in out["error"]


async def test_sdk_bug_is_500_with_short_message(jp_serverapp, call, monkeypatch, caplog):
    from mlscale_sdk import jobs
    def broken(): raise RuntimeError("store exploded\nsecond line")
    monkeypatch.setattr(jobs, "list_jobs", broken)
    code, out = await call("GET", "jobs")
    assert code == 500 and out["error"].startswith("RuntimeError: store exploded") and "second line" not in out["error"]


async def test_blocking_sdk_call_does_not_block_the_server(project, call, monkeypatch):
    from mlscale_sdk import jobs
    gate = __import__("threading").Event()
    def slow():
        assert gate.wait(30), "the other request never got through"
        return []
    monkeypatch.setattr(jobs, "list_jobs", slow)
    slow_req = asyncio.ensure_future(call("GET", "jobs"))
    await asyncio.sleep(0.2)
    code, _ = await call("GET", "clusters/profiles")   # answered while list_jobs is still blocked in its thread
    assert code == 200 and not slow_req.done()
    gate.set()
    assert await slow_req == (200, [])


# ---------------------------------------------------------------- jobs end to end

@pytest.mark.slow
async def test_promote_run_now_history_output(project, call):
    make_nb(project / "work" / "report.ipynb", body="print('hello', label, rows)")
    code, params = await call("GET", "notebooks/parameters", params={"path": "work/report.ipynb"})
    assert code == 200 and set(params["parameters"]) == {"rows", "label"} and params["parameters"]["rows"]["type"] == "int"
    code, job = await call("POST", "jobs", body={"notebook": "work/report.ipynb", "name": "report", "schedule": "0 3 * * *",
                                                 "parameters": {"rows": 3}})
    assert code == 201 and job["name"] == "report" and job["spec"]["notebook"] == "work/report.ipynb"
    assert job["next_run_at"] and job["last_run"] is None
    code, jobs = await call("GET", "jobs")
    assert [j["name"] for j in jobs] == ["report"] and jobs[0]["next_run_at"]
    code, paused = await call("POST", "jobs/report/pause")
    assert code == 200 and paused["paused"] and paused["next_run_at"] is None
    code, resumed = await call("POST", "jobs/report/resume")
    assert code == 200 and not resumed["paused"] and resumed["next_run_at"]
    code, out = await call("POST", "jobs/report/run", body={"parameters": {"rows": "many"}})
    assert code == 400 and "rows" in out["error"], out
    code, run = await call("POST", "jobs/report/run", body={"parameters": {"label": "api"}})
    assert code == 202 and run["job"] == "report"
    deadline = time.monotonic() + 150
    while True:
        code, hist = await call("GET", "jobs/report/history")
        assert code == 200 and hist[0]["id"] == run["id"]
        if hist[0]["status"] in ("succeeded", "failed", "timed_out", "interrupted", "cancelled"): break
        assert time.monotonic() < deadline, f"run still {hist[0]['status']}"
        await asyncio.sleep(0.5)
    assert hist[0]["status"] == "succeeded", hist[0]
    assert hist[0]["parameters"] == {"rows": 3, "label": "api"}
    code, one = await call("GET", f"runs/{run['id']}")
    assert code == 200 and one["status"] == "succeeded"
    code, out = await call("GET", f"runs/{run['id']}/output")
    assert code == 200 and out["path"] and not out["path"].startswith("/")
    out_nb = nbformat.read(project / out["path"], as_version=4)
    assert "hello api 3" in json.dumps(out_nb.cells[-1].outputs)
    code, job = await call("GET", "jobs/report")
    assert job["last_run"]["status"] == "succeeded"
    code, _ = await call("DELETE", "jobs/report")
    assert code == 204
    code, _ = await call("GET", "jobs/report")
    assert code == 404


# ---------------------------------------------------------------- clusters

@pytest.mark.slow
async def test_cluster_started_from_code_is_listed_scaled_and_stopped(project, call):
    from mlscale_sdk import clusters
    code, profiles = await call("GET", "clusters/profiles")
    assert code == 200 and "local" in [p["name"] for p in profiles]
    h = await asyncio.to_thread(clusters.start_cluster, "local", n_workers=1, name="from-code")
    try:
        code, recs = await call("GET", "clusters")
        assert code == 200 and [r["name"] for r in recs] == ["from-code"]
        assert recs[0]["workers"] == 1 and recs[0]["profile"] == "local" and recs[0]["scheduler_address"].startswith("tcp://")
        code, out = await call("POST", "clusters/from-code/scale", body={"n": -1})
        assert code == 400
        code, out = await call("POST", "clusters/from-code/adapt", body={"minimum": 3, "maximum": 1})
        assert code == 400 and "minimum <= maximum" in out["error"]
        code, out = await call("POST", "clusters/from-code/scale", body={"n": 2})
        assert code == 200, out
        await asyncio.to_thread(h.wait_for_workers, 2, 60)
        code, recs = await call("GET", "clusters")
        assert recs[0]["workers"] == 2
        code, _ = await call("DELETE", "clusters/from-code")
        assert code == 204
        code, recs = await call("GET", "clusters")
        assert recs == []
    finally:
        await asyncio.to_thread(h.close)


@pytest.mark.slow
async def test_start_cluster_from_profile_then_stop(project, call):
    code, out = await call("POST", "clusters", body={"profile": "local", "options": "many"})
    assert code == 400 and "options" in out["error"]
    code, rec = await call("POST", "clusters", body={"profile": "local", "name": "from-ui", "options": {"n_workers": 1}})
    assert code == 201 and rec["name"] == "from-ui" and rec["profile"] == "local", rec
    try:
        code, recs = await call("GET", "clusters")
        assert [r["name"] for r in recs] == ["from-ui"] and recs[0]["owner_pid"] != os.getpid()   # a detached process
    finally:
        code, out = await call("DELETE", "clusters/from-ui")
    assert code == 204, out
    code, recs = await call("GET", "clusters")
    assert recs == []


async def test_cluster_requests_are_untrusted_input(project, call, tmp_path_factory):
    "POST /clusters: profile names only, plain cluster names, no code-loading or colliding options (issue 11)."
    outside = tmp_path_factory.mktemp("outside")
    (outside / "victim.log").write_text("precious")
    (outside / "victim.ready").write_text("keep me")
    (outside / "evil.yaml").write_text("cls: subprocess.Popen\noptions: {args: [touch, x]}\n")
    victim = os.path.relpath(outside / "victim", project / ".mlscale" / "clusters")
    bad = [
        ({"profile": str(outside / "evil.yaml")}, "profile name"),
        ({"profile": "../clusters/local"}, "profile name"),
        ({"profile": "local", "name": victim}, "cluster name"),
        ({"profile": "local", "name": {"x": 1}}, "name must be a string"),
        ({"profile": "local", "options": {"preload": ["/tmp/x.py"]}}, "'preload'"),
        ({"profile": "local", "options": {"scheduler_kwargs": {"worker_class": "x"}}}, "'scheduler_kwargs.worker_class'"),
        ({"profile": "local", "options": {"dashboard_address": ":0"}}, "'dashboard_address'"),
        ({"profile": "local", "options": {"name": "x"}}, "not a cluster option"),
        ({"profile": "local", "options": {"timeout": 1}}, "not a cluster option"),
        ({"profile": "local", "options": {"register": False}}, "not a cluster option"),
    ]
    for body, message in bad:
        code, out = await call("POST", "clusters", body=body)
        assert code == 400 and message in out["error"], (body, code, out)
    assert (outside / "victim.log").read_text() == "precious" and (outside / "victim.ready").exists()
    assert sorted(p.name for p in outside.iterdir()) == ["evil.yaml", "victim.log", "victim.ready"]
    code, recs = await call("GET", "clusters")
    assert code == 200 and recs == []


# ---------------------------------------------------------------- MLflow and monitoring

@pytest.mark.slow
async def test_mlflow_models_runs_and_promote(project, call):
    import numpy as np, pandas as pd, xgboost as xgb
    from mlscale_sdk import tracking
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (X.a > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), 5)
    def log():
        with tracking.start_run("tiny") as run:
            run.log_metric("auc", 0.91)
            tracking.log_xgboost_model(booster, X, registered_model_name="tiny")
        return run.run_id
    run_id = await asyncio.to_thread(log)
    code, exps = await call("GET", "mlflow/experiments")
    assert code == 200 and exps
    code, runs = await call("GET", "mlflow/runs", params={"limit": "5"})
    assert code == 200 and runs[0]["run_id"] == run_id and runs[0]["metrics"] == {"auc": 0.91}
    code, models = await call("GET", "mlflow/models")
    assert code == 200 and [m["name"] for m in models] == ["tiny"]
    assert [v["version"] for v in models[0]["versions"]] == ["1"] and models[0]["versions"][0]["run_id"] == run_id
    code, out = await call("POST", "mlflow/models/tiny/promote", body={"version": 1, "require": {"auc": ">= zero"}})
    assert code == 400 and "malformed requirement" in out["error"]
    code, out = await call("POST", "mlflow/models/tiny/promote", body={"version": 7, "require": {"auc": ">= 0.5"}})
    assert code == 404 and "no version 7" in out["error"]
    code, d = await call("POST", "mlflow/models/tiny/promote", body={"version": 1, "require": {"auc": ">= 0.8"}})
    assert code == 200 and d["promoted"] and d["alias"] == "champion" and d["reasons"] and d["by"] and d["at"]
    code, m = await call("GET", "mlflow/models/tiny")
    assert code == 200 and m["aliases"] == {"champion": "1"} and m["versions"][0]["aliases"] == ["champion"]
    (p,) = m["promotions"]
    assert (p["version"], p["decision"], p["by"], p["time"], p["reasons"]) == ("1", "promoted", d["by"], d["at"], d["reasons"])


@pytest.mark.named_user
async def test_promote_records_the_authenticated_user_never_the_body(project, call, monkeypatch):
    "Who promoted comes from authentication: a body naming a user is refused, MLSCALE_USER does not count."
    monkeypatch.setenv("MLSCALE_USER", "mallory")                  # the server's environment is not who asks
    v1, v2 = await asyncio.to_thread(lambda: (_bare_version("m", auc=0.9), _bare_version("m", auc=0.85)))
    path, ok = "mlflow/models/m/promote", {"version": v1, "require": {"auc": ">= 0.8"}}
    for body, field in (({**ok, "by": "mallory"}, "unknown field(s) for promoting a model: 'by'"),
                        ({**ok, "user": "mallory"}, "unknown field(s) for promoting a model: 'user'"),
                        ({**ok, "alias": "a" * 101}, "alias"), ({**ok, "version": "1" * 21}, "version"),
                        ({**ok, "require": {f"m{i}": "> 0" for i in range(101)}}, "require"),
                        ({**ok, "require": {"m" * 251: "> 0"}}, "require"), ({**ok, "metric": "m" * 251}, "metric")):
        code, out = await call("POST", path, body=body)
        assert code == 400 and field in out["error"], (body.keys(), out)
    code, m = await call("GET", "mlflow/models/m")
    assert code == 200 and m["promotions"] == [], "a refused body recorded a decision"
    code, d = await call("POST", path, body=ok)
    assert code == 200 and d["promoted"] and d["by"] == "ada"
    for _ in range(2):                                              # the same version and alias twice: both kept
        code, d = await call("POST", path, body={"version": v2, "require": {"auc": ">= 0.8"}})
        assert code == 200 and not d["promoted"] and d["by"] == "ada" and d["champion_version"] == v1
    code, m = await call("GET", "mlflow/models/m")
    assert [(p["version"], p["alias"], p["decision"], p["by"]) for p in m["promotions"]] == [
        (v2, "champion", "rejected", "ada"), (v2, "champion", "rejected", "ada"), (v1, "champion", "promoted", "ada")]
    times = [p["time"] for p in m["promotions"]]
    assert times == sorted(times, reverse=True) and len(set(times)) == 3 and m["promotions"][0]["time"] == d["at"]
    code, models = await call("GET", "mlflow/models")
    assert code == 200 and models[0]["promotions"] == m["promotions"]


async def test_monitor_alerts_and_series(project, call):
    from mlscale_sdk import monitor
    code, alerts = await call("GET", "monitor/alerts")
    assert code == 200 and alerts == []
    code, out = await call("GET", "monitor/alerts", params={"limit": "0"})
    assert code == 400
    def log():
        import os
        os.environ["MLSCALE_JOB_ID"] = "j1"; os.environ["MLSCALE_JOB_RUN_ID"] = "r1"
        try: monitor.log_metrics({"rows": 5.0}, mlflow=False)
        finally: os.environ.pop("MLSCALE_JOB_ID"); os.environ.pop("MLSCALE_JOB_RUN_ID")
    await asyncio.to_thread(log)
    code, names = await call("GET", "monitor/metrics/j1")
    assert code == 200 and [n["name"] for n in names] == ["rows"], names
    code, series = await call("GET", "monitor/metrics/j1/rows")
    assert code == 200 and [p["value"] for p in series] == [5.0]



async def test_job_and_alert_secrets_are_redacted(project, call):
    "A webhook with a token and an Authorization header: GET /jobs/{name}, /jobs and /monitor/alerts never show them."
    from mlscale_sdk import jobs, monitor
    make_nb(project / "work" / "score.ipynb")
    hook = {"webhook": "https://hooks.example.com/x?token=abc123", "headers": {"Authorization": "Bearer s3cr3t"},
            "retries": 0, "timeout": 2}
    code, job = await call("POST", "jobs", body={"notebook": "work/score.ipynb", "name": "score", "on_failure": [hook]})
    assert code == 201, job
    assert jobs.get_job("score").spec.on_failure[0]["headers"] == {"Authorization": "Bearer s3cr3t"}   # stored as given
    code, one = await call("GET", "jobs/score")
    assert code == 200 and one["spec"]["on_failure"][0]["webhook"] == "https://hooks.example.com/x?token=***"
    assert one["spec"]["on_failure"][0]["headers"] == {"Authorization": "Bearer ***"}
    code, listed = await call("GET", "jobs")
    # hooks.example.com does not resolve: a failed delivery whose error names the URL
    alert = await asyncio.to_thread(monitor.fire, "score", "failure", "[mlscale] job score failed", [hook], kind="failure")
    assert not alert.ok
    code, alerts = await call("GET", "monitor/alerts")
    assert code == 200 and alerts[0]["actions"][0]["action"] == "webhook https://hooks.example.com/x?token=***"
    for where, shown in {"job": job, "GET job": one, "GET jobs": listed, "alerts": alerts}.items():
        assert "abc123" not in json.dumps(shown) and "s3cr3t" not in json.dumps(shown), where


# ---------------------------------------------------------------- installation

def test_extension_enabled_after_install():
    r = subprocess.run([str(BIN / "jupyter"), "server", "extension", "list"], capture_output=True, text=True, timeout=120)
    out = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)
    assert re.search(r"^\s*mlscale_sdk enabled\s*$", out, re.M), out
    assert re.search(r"^\s*mlscale_sdk [\d.]+ OK\s*$", out, re.M), out   # the module imports and has the extension points


@pytest.mark.slow
async def test_cluster_cap_is_a_400_and_list_shows_cost_and_idle(project, call):
    from mlscale_sdk import clusters
    h = await asyncio.to_thread(clusters.start_cluster, "local", n_workers=1, name="capped-rest", max_workers=1,
                                idle_timeout="1h", set_as_default=False)
    try:
        code, out = await call("POST", "clusters/capped-rest/scale", body={"n": 2})
        assert code == 400 and "at most 1 workers" in out["error"], out
        code, out = await call("POST", "clusters/capped-rest/adapt", body={"minimum": 0, "maximum": 3})
        assert code == 400 and "max_workers" in out["error"], out
        code, recs = await call("GET", "clusters")
        assert code == 200 and recs[0]["workers"] == 1
        assert recs[0]["idle_timeout"] == 3600 and 0 < recs[0]["idle_left"] <= 3600 and recs[0]["core_hours"] > 0
        assert recs[0]["cost"] == 0.0
    finally:
        await asyncio.to_thread(h.close)


async def test_jobs_since_token_is_304_until_a_job_changes(project, call, jp_fetch):
    async def get(since=None):
        r = await jp_fetch(API, "jobs", method="GET", raise_error=False, params={"since": since} if since else None)
        return r.code, r.headers.get("X-Mlscale-Token"), r.body
    code, token, body = await get()
    assert code == 200 and token and json.loads(body) == []
    code, again, body = await get(token)
    assert code == 304 and not body and again == token
    make_nb(project / "work" / "poll.ipynb")
    code, _ = await call("POST", "jobs", body={"notebook": "work/poll.ipynb", "name": "poll"})
    assert code == 201
    code, new, body = await get(token)
    assert code == 200 and new != token and [j["name"] for j in json.loads(body)] == ["poll"]
    assert (await get(new))[0] == 304
    # the answer is cached by a store fingerprint: a pause, then a run, each show at once
    assert (await call("POST", "jobs/poll/pause"))[0] == 200
    code, paused, body = await get(new)
    assert code == 200 and paused != new and json.loads(body)[0]["paused"] is True
    assert (await call("POST", "jobs/poll/run", body={}))[0] == 202
    code, ran, body = await get(paused)
    assert code == 200 and ran != paused and json.loads(body)[0]["last_run"] is not None
    code, out = await call("GET", "jobs", params={"since": "x", "bogus": "1"})
    assert code == 400 and "bogus" in out["error"]


async def test_clusters_since_token_is_304_when_unchanged(project, jp_fetch):
    r = await jp_fetch(API, "clusters", method="GET", raise_error=False)
    token = r.headers.get("X-Mlscale-Token")
    assert r.code == 200 and token and json.loads(r.body) == []
    r = await jp_fetch(API, "clusters", method="GET", raise_error=False, params={"since": token})
    assert r.code == 304 and not r.body
    r = await jp_fetch(API, "clusters", method="GET", raise_error=False, params={"since": "stale"})
    assert r.code == 200 and json.loads(r.body) == []
