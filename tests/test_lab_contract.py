"""The front end against the server's contract: every body the panel's TypeScript builders (labextension/src/logic.ts)
can build is built by running that code with node, then sent to a real jupyter_server with the mlscale extension."""
import asyncio, json, shutil, subprocess, time

import pytest

from conftest import ROOT
from test_server import call, jp_root_dir, jp_server_config, make_nb  # noqa: F401 (fixtures)

pytest_plugins = ["pytest_jupyter.jupyter_server"]

EXT = ROOT / "labextension"
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def build():
    "`build(fn, *args)`: the value `logic.<fn>(*args)` returns, computed by the compiled TypeScript under node."
    tsc = EXT / "node_modules" / ".bin" / "tsc"
    if not NODE or not tsc.exists():
        pytest.skip("node or labextension/node_modules missing (cd labextension && jlpm install)")
    subprocess.run([str(tsc), "-p", "tsconfig.test.json"], cwd=EXT, check=True, timeout=180)
    lib = EXT / "lib-test" / "logic.js"

    def run(fn, *args):
        js = "const l=require(process.argv[1]);const [f,a]=JSON.parse(process.argv[2]);"
        js += "process.stdout.write(JSON.stringify(l[f](...a)))"
        out = subprocess.run([NODE, "-e", js, str(lib), json.dumps([fn, args])], capture_output=True, text=True,
                             check=True, timeout=60)
        return json.loads(out.stdout)
    return run


FIELDS = {"rows": {"default": "10", "type": "int"}, "label": {"default": "'x'", "type": "str"}}


def form(**over):
    "A Promote dialog form as the panel fills it."
    f = dict(notebook="nb.ipynb", name="job1", schedule="0 3 * * *", timezone="UTC", cluster="", retries="1",
             timeout="600", alertEmail="", alertWebhook="", rules=[], params={"rows": "20", "label": "x"})
    return {**f, **over}


def rule(kind="metric", actions=(), **over):
    r = dict(kind=kind, metric="auc", op="<", threshold="0.8", column="amount", stat="psi", condition="> 0.2",
             actions=list(actions))
    return {**r, **over}


EMAIL, HOOK, RETRAIN = ({"kind": "email", "target": "ops@example.com"}, {"kind": "webhook", "target": "https://h.example/x"},
                        {"kind": "retrain", "target": "job1"})

PROMOTE_CASES = {
    "alert e-mail on failure": form(alertEmail="ops@example.com"),
    "webhook on failure": form(alertWebhook="https://h.example/x"),
    "webhook from the environment": form(alertWebhook="${HOOK_URL}"),
    "metric threshold with e-mail": form(rules=[rule(actions=[EMAIL])]),
    "metric threshold with webhook and retrain": form(rules=[rule(op=">=", threshold="1e-3", actions=[HOOK, RETRAIN])]),
    "drift with retrain": form(rules=[rule("drift", actions=[RETRAIN])]),
    "every action and rule at once": form(alertEmail="a@b.c", alertWebhook="http://h/",
                                          rules=[rule(actions=[EMAIL, HOOK, RETRAIN]), rule("drift", stat="ks", actions=[EMAIL])]),
    "no schedule, no alerts": form(schedule="", timeout="", retries=""),
}


@pytest.mark.parametrize("case", list(PROMOTE_CASES))
async def test_every_promote_body_is_accepted(project, call, build, case):
    make_nb(project / "nb.ipynb")
    fields = build("paramFields", FIELDS)
    out = build("promoteBody", PROMOTE_CASES[case], fields)
    assert out["errors"] == {} and out["body"], out
    body = out["body"]
    code, job = await call("POST", "jobs", body=body)
    assert code == 201, (case, body, job)
    spec = job["spec"]
    assert spec["parameters"] == {"rows": 20} and len(spec["on_failure"]) == len(body.get("on_failure", []))
    assert len(spec["alerts"]) == len(body.get("alerts", []))


async def test_a_bad_form_is_stopped_in_the_browser_with_errors_at_the_field(project, call, build):
    "What the dialog refuses the server refuses too (the same action with the same bad value)."
    fields = build("paramFields", FIELDS)
    out = build("promoteBody", form(alertEmail="nope", rules=[rule(op="=")]), fields)
    assert "body" not in out and set(out["errors"]) == {"alertEmail", "rule0"}
    make_nb(project / "nb.ipynb")
    code, err = await call("POST", "jobs", body={"notebook": "nb.ipynb", "on_failure": [{"email": "nope"}]})
    assert code == 400 and "not an email address" in err["error"]
    # the shape the dialog used to send is refused: a regression guard for the broken flow
    code, err = await call("POST", "jobs", body={"notebook": "nb.ipynb", "on_failure": [{"action": "email", "to": "a@b.c"}]})
    assert code == 400
    code, jobs = await call("GET", "jobs")
    assert jobs == []


async def test_scale_and_adapt_bodies_are_accepted(project, call, build):
    from mlscale_sdk import clusters
    h = await asyncio.to_thread(clusters.start_cluster, "local", n_workers=1, name="c1")
    try:
        body = build("scaleBody", "2")["body"]
        code, out = await call("POST", "clusters/c1/scale", body=body)
        assert code == 200 and out == {"name": "c1", "n": 2}, out
        body = build("adaptBody", "1", "3")["body"]
        code, out = await call("POST", "clusters/c1/adapt", body=body)
        assert code == 200 and out == {"name": "c1", "minimum": 1, "maximum": 3}, out
        assert "error" in build("scaleBody", "-1") and "error" in build("adaptBody", "3", "1")
    finally:
        await asyncio.to_thread(h.close)


async def test_run_with_overrides_body_is_accepted(project, call, build):
    make_nb(project / "nb.ipynb", body="print(label * rows)")
    fields = build("paramFields", FIELDS)
    code, _ = await call("POST", "jobs", body=build("promoteBody", form(schedule=""), fields)["body"])
    assert code == 201
    body = build("runBody", fields, {"rows": "3", "label": "ab"})["body"]
    assert body == {"parameters": {"rows": 3, "label": "ab"}}
    code, run = await call("POST", "jobs/job1/run", body=body)
    assert code == 202, run
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        code, r = await call("GET", f"runs/{run['id']}")
        if r["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(1)
    assert r["status"] == "succeeded" and r["parameters"]["rows"] == 3, r


async def test_promote_model_body_is_accepted(project, call, build):
    import numpy as np, pandas as pd, xgboost as xgb
    from mlscale_sdk import tracking
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(100, 2)), columns=["a", "b"])
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(X, label=(X.a > 0).astype(int)), 3)

    def log():
        with tracking.start_run("m") as run:
            run.log_metric("auc", 0.9)
            tracking.log_xgboost_model(booster, X, registered_model_name="m")
    await asyncio.to_thread(log)
    for args in (["1", "champion", "auc"], ["1", "staging", "", {"auc": ">= 0.8"}]):
        body = build("promoteModelBody", *args)["body"]
        code, d = await call("POST", "mlflow/models/m/promote", body=body)
        assert code == 200 and d["promoted"] and d["alias"] == args[1], (body, d)
    assert "error" in build("promoteModelBody", "1", "champion", "")


def test_generated_typescript_types_are_current():
    "src/openapi.d.ts is what `jlpm gen:types` makes of mlscale_sdk/openapi.yaml (the builders are typed by it)."
    gen, prettier = (EXT / "node_modules" / ".bin" / n for n in ("openapi-typescript", "prettier"))
    if not gen.exists():
        pytest.skip("labextension/node_modules missing (cd labextension && jlpm install)")
    out = EXT / "lib-test" / "openapi.check.d.ts"
    out.parent.mkdir(exist_ok=True)
    subprocess.run([str(gen), "../mlscale_sdk/openapi.yaml", "--empty-objects-unknown", "--default-non-nullable", "false",
                    "-o", str(out)], cwd=EXT,
                   check=True, capture_output=True, timeout=120)
    subprocess.run([str(prettier), "--write", str(out)], cwd=EXT, check=True, capture_output=True, timeout=120)
    assert out.read_text() == (EXT / "src" / "openapi.d.ts").read_text(), "run `jlpm gen:types` in labextension/"
