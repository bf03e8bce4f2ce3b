"""Monitoring: job metrics, Prometheus, rules, alert actions against real receivers, drift on Dask."""
import asyncio, http.server, json, math, os, shutil, subprocess, sys, threading, time, urllib.request
from pathlib import Path
from types import SimpleNamespace
from datetime import datetime, timezone, timedelta

import pytest

from conftest import ROOT, free_port, wait_for


# ---------------------------------------------------------------- real receivers

class _Recorder(http.server.BaseHTTPRequestHandler):
    "Records every request; answers with the next code from `codes` (then 200)."
    def _handle(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        srv = self.server
        with srv.lock:
            code = srv.codes.pop(0) if srv.codes else 200
            srv.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                 "body": body.decode(), "code": code, "t": time.monotonic()})
        self.send_response(code); self.send_header("Content-Length", "0")
        if 300 <= code < 400: self.send_header("Location", srv.url + "/elsewhere")
        self.end_headers()
    do_POST = do_PUT = _handle
    def log_message(self, *a): pass


@pytest.fixture
def receiver(monkeypatch):
    "A local HTTP server that records requests (webhooks, Pushgateway PUTs); loopback webhooks allowed."
    monkeypatch.setenv("MLSCALE_ALLOW_PRIVATE_WEBHOOKS", "1")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    srv.requests, srv.codes, srv.lock = [], [], threading.Lock()
    srv.url = f"http://127.0.0.1:{srv.server_port}"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown(); srv.server_close()


@pytest.fixture
def smtp_server():
    "A local SMTP server (aiosmtpd) that records mail."
    from aiosmtpd.controller import Controller
    class Handler:
        def __init__(self): self.mails = []
        async def handle_DATA(self, server, session, envelope):
            self.mails.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "data": envelope.content.decode()})
            return "250 OK"
    h = Handler()
    ctl = Controller(h, hostname="127.0.0.1", port=free_port())
    ctl.start()
    ctl.mails = h.mails
    yield ctl
    ctl.stop()


def _parse(text):
    from prometheus_client.parser import text_string_to_metric_families
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(fams, name, **match):
    return [s for s in fams[name].samples if all(s.labels.get(k) == v for k, v in match.items())]


def _run(id, status="succeeded", attempt=1, secs=5.0, **kw):
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return SimpleNamespace(id=id, status=status, attempt=attempt, started_at=t0, ended_at=t0 + timedelta(seconds=secs),
                           error=kw.pop("error", None), mlflow_run_id=None, metrics={}, **kw)


@pytest.fixture
def in_job(monkeypatch):
    "Pretend the code runs inside job run (job, run_id), as the job runner's kernel does."
    def enter(job, run_id):
        monkeypatch.setenv("MLSCALE_JOB_ID", job); monkeypatch.setenv("MLSCALE_JOB_RUN_ID", run_id)
    yield enter


@pytest.fixture(autouse=True)
def _end_mlflow_run(request):
    "End the MLflow run `log_metric` may have made active, before the project goes away."
    if "project" in request.fixturenames: request.getfixturevalue("project")
    yield
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None: mlflow.end_run()
    from mlscale_sdk import monitor
    monitor._mlflow_runs.clear()


# ---------------------------------------------------------------- metrics

def test_log_metric_outside_a_job_goes_to_mlflow_only(project, monkeypatch):
    monkeypatch.delenv("MLSCALE_JOB_ID", raising=False); monkeypatch.delenv("MLSCALE_JOB_RUN_ID", raising=False)
    from mlscale_sdk import monitor, tracking
    r = monitor.log_metrics({"auc": 0.9, "logloss": 0.3}, segment="EU")
    assert not r.stored and r.job is None
    m = tracking.client().get_run(r.mlflow_run_id).data.metrics
    assert m == {"auc/segment:EU": 0.9, "logloss/segment:EU": 0.3}
    assert monitor.recent_alerts() == [] and monitor.metric_series("x", "auc") == []
    import mlflow
    assert mlflow.active_run() is None                 # our run is not made active...
    with tracking.start_run(name="mine") as run:      # ...so the notebook can start its own, which is then used
        assert monitor.log_metric("auc", 0.95).mlflow_run_id == run.run_id
    assert monitor.log_metric("auc", 0.96).mlflow_run_id == r.mlflow_run_id
    monitor._end_owned_runs()
    assert tracking.client().get_run(r.mlflow_run_id).info.status == "FINISHED"


def test_log_metric_in_a_job_kernel_is_stored_logged_and_scraped(project):
    "A separate process (like the job's kernel) logs; this process (like the scheduler) serves /metrics."
    from mlscale_sdk import monitor
    code = ("from mlscale_sdk import monitor\n"
            "monitor.log_metrics({'auc': 0.83, 'rows_scored': 12345})\n"
            "monitor.log_metric('hit_rate', 0.4, segment='EU')\n"
            "monitor.log_metric('hit_rate', 0.7, segment='US')\n")
    env = {**os.environ, "MLSCALE_JOB_ID": "scoring", "MLSCALE_JOB_RUN_ID": "r-1"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=120)
    assert monitor.run_metrics("r-1") == {"auc": 0.83, "rows_scored": 12345.0, 'hit_rate{segment="EU"}': 0.4, 'hit_rate{segment="US"}': 0.7}
    # the MLflow run is tagged with the job run, so the runner finds it
    from mlscale_sdk.tracking import client
    c = client()
    runs = c.search_runs([e.experiment_id for e in c.search_experiments()], "tags.`mlscale.job_run_id` = 'r-1'")
    assert len(runs) == 1 and runs[0].data.metrics["hit_rate/segment:EU"] == 0.4 and runs[0].data.tags["mlscale.job_id"] == "scoring"
    # the run ends; the hook records status, duration, attempt and rows and closes the MLflow run
    run = _run("r-1", secs=7.5, attempt=2); run.mlflow_run_id = runs[0].info.run_id     # as the job runner finds it
    monitor.on_run_finished(SimpleNamespace(name="scoring", spec={}), run)
    assert c.get_run(runs[0].info.run_id).info.status == "FINISHED"
    assert c.get_run(runs[0].info.run_id).data.metrics["mlscale.run.duration"] == 7.5
    with monitor.serve_metrics(0, addr="127.0.0.1") as srv:
        fams = _parse(urllib.request.urlopen(srv.url, timeout=10).read().decode())
    assert [s.value for s in _samples(fams, "mlscale_job_metric", mlscale_job="scoring", metric="hit_rate", segment="EU")] == [0.4]
    assert [s.value for s in _samples(fams, "mlscale_job_metric", mlscale_job="scoring", metric="auc")] == [0.83]
    assert _samples(fams, "mlscale_job_last_run_duration_seconds", mlscale_job="scoring")[0].value == 7.5
    assert _samples(fams, "mlscale_job_last_run_attempt", mlscale_job="scoring")[0].value == 2
    assert _samples(fams, "mlscale_job_last_run_rows", mlscale_job="scoring", kind="scored")[0].value == 12345
    assert _samples(fams, "mlscale_job_last_run_success", mlscale_job="scoring")[0].value == 1
    assert {s.labels["status"]: s.value for s in _samples(fams, "mlscale_job_last_run_status")}["succeeded"] == 1


def test_batch_records_a_loop_in_one_go(project, in_job, monkeypatch):
    from mlscale_sdk import monitor, tracking
    in_job("train", "b-1")
    calls = []
    real = tracking.client
    def counting_client():
        c = real()
        orig = c.log_batch
        def log_batch(*a, **k): calls.append(len(k.get("metrics") or [])); return orig(*a, **k)
        c.log_batch = log_batch
        return c
    monkeypatch.setattr(tracking, "client", counting_client)
    with monitor.batch():
        for step in range(1500):
            monitor.log_metrics({"loss": 1 / (step + 1), "lr": 0.1}, step=step)
        with monitor.batch():                               # nested: the outer block records
            monitor.log_metric("epochs", 1500)
        assert monitor.run_metrics("b-1") == {}
    assert monitor.run_metrics("b-1") == {"loss": 1 / 1500, "lr": 0.1, "epochs": 1500.0}
    assert calls == [1000, 1000, 1000, 1]                  # 3,001 points: log_batch calls of at most 1,000
    hist = tracking.client().get_metric_history(monitor._mlflow_runs["b-1"], "loss")
    assert len(hist) == 1500 and sorted(h.step for h in hist)[-1] == 1499
    with pytest.raises(ValueError, match="must be a number"):
        with monitor.batch():
            monitor.log_metric("ok", 1)
            monitor.log_metric("bad", "x")                  # rejected at the call, before anything is recorded
    assert monitor.run_metrics("b-1")["ok"] == 1            # what was valid before the error is kept


@pytest.mark.parametrize("call, message", [
    (lambda m: m.log_metric("9bad", 1), "invalid metric name"),
    (lambda m: m.log_metric("auc", "high"), "must be a number"),
    (lambda m: m.log_metric("auc", 1, job="x"), "reserved"),
    (lambda m: m.log_metric("auc", 1, **{"bad-label": "x"}), "invalid label name"),
    (lambda m: m.log_metrics([("auc", 1)]), "dict of name -> value"),
    (lambda m: m.log_metrics({"auc": 0.9, "rows": None}), "must be a number"),
])
def test_bad_metric_input_is_rejected_and_nothing_is_stored(project, in_job, call, message):
    from mlscale_sdk import monitor
    in_job("scoring", "r-bad")
    with pytest.raises(ValueError, match=message):
        call(monitor)
    assert monitor.run_metrics("r-bad") == {}


def test_runs_total_and_last_status_over_several_runs(project):
    from mlscale_sdk import monitor
    job = SimpleNamespace(name="etl", spec={})
    for i, st in enumerate(["succeeded", "failed", "succeeded", "timed_out"]):
        monitor.on_run_finished(job, _run(f"e-{i}", status=st))
    fams = _parse(monitor.metrics_text())
    assert {s.labels["status"]: s.value for s in _samples(fams, "mlscale_job_runs", mlscale_job="etl")} == \
        {"succeeded": 2, "failed": 1, "timed_out": 1}
    assert {s.labels["status"]: s.value for s in _samples(fams, "mlscale_job_last_run_status", mlscale_job="etl") if s.value} == {"timed_out": 1}
    assert _samples(fams, "mlscale_job_last_run_success", mlscale_job="etl")[0].value == 0


def test_serve_metrics_on_a_busy_port_says_so(project):
    from mlscale_sdk import monitor
    with monitor.serve_metrics(0, addr="127.0.0.1") as srv:
        with pytest.raises(monitor.MonitorError, match=f"cannot serve /metrics on 127.0.0.1:{srv.port}"):
            monitor.serve_metrics(srv.port, addr="127.0.0.1")


def test_scheduler_hooks_serve_metrics_and_forked_runs_do_not_keep_the_port(project, monkeypatch):
    "The scheduler forks its runs: a forked child must not hold /metrics' listening socket."
    from mlscale_sdk import monitor
    monkeypatch.setenv("MLSCALE_METRICS_PORT", "0"); monkeypatch.setenv("MLSCALE_METRICS_ADDR", "127.0.0.1")
    srv = monitor.on_scheduler_start()
    assert _parse(urllib.request.urlopen(srv.url, timeout=10).read().decode())
    pid = os.fork()
    if pid == 0:                       # a "run" forked by the scheduler, outliving it
        time.sleep(3); os._exit(0)
    try:
        monitor.on_scheduler_stop()
        again = monitor.serve_metrics(srv.port, addr="127.0.0.1")   # a restarted scheduler gets the port back
        again.close()
    finally:
        os.waitpid(pid, 0)
    monkeypatch.setenv("MLSCALE_METRICS_PORT", str(srv.port))
    with monitor.serve_metrics(srv.port, addr="127.0.0.1"):
        assert monitor.on_scheduler_start() is None      # a standby scheduler: port taken, logged, not fatal


def test_push_to_a_gateway(project, in_job, receiver):
    from mlscale_sdk import monitor
    in_job("scoring", "p-1")
    monitor.log_metric("auc", 0.77, mlflow=False)
    in_job("other", "p-2")
    monitor.log_metric("auc", 0.5, mlflow=False)
    assert monitor.push(receiver.url, job="scoring") == "/metrics/job/mlscale/mlscale_job/scoring"
    req = receiver.requests[-1]
    assert req["method"] == "PUT" and req["path"] == "/metrics/job/mlscale/mlscale_job/scoring"
    fams = _parse(req["body"])
    assert [(s.labels["mlscale_job"], s.value) for s in fams["mlscale_job_metric"].samples] == [("scoring", 0.77)]
    receiver.codes.append(500)
    with pytest.raises(Exception, match="500"):
        monitor.push(receiver.url)


def test_pushgateway_env_pushes_from_the_job(project, in_job, receiver, monkeypatch):
    from mlscale_sdk import monitor
    in_job("remote-job", "g-1")
    monkeypatch.setenv("MLSCALE_PUSHGATEWAY_URL", receiver.url)
    assert monitor.log_metric("auc", 0.66, mlflow=False).pushed
    assert 'mlscale_job_metric{metric="auc",mlscale_job="remote-job"} 0.66' in receiver.requests[-1]["body"]


# ---------------------------------------------------------------- rules

GOOD = {"name": "score", "alerts": [{"metric": "auc", "op": "<", "threshold": 0.8, "actions": [{"retrain": "train"}]}]}

@pytest.mark.parametrize("spec, message", [
    ({"alerts": [{"metric": "auc", "op": "=>", "threshold": 0.8}]}, r"alerts\[0\]\.op: Input should be"),
    ({"alerts": [{"metric": "auc", "op": "<"}]}, "needs a threshold"),
    ({"alerts": [{"metric": "auc", "threshold": 0.8}]}, "needs an op"),
    ({"alerts": [{"op": "<", "threshold": 0.8}]}, "needs a metric"),
    ({"alerts": [{"metric": "auc", "op": "<", "threshold": "high"}]}, r"alerts\[0\]\.threshold"),
    ({"alerts": [{"metric": "auc", "op": "<", "threshold": 0.8, "actions": [{"retrain": "nope"}]}]}, "retrain names unknown job 'nope'"),
    ({"alerts": [{"metric": "auc", "op": "<", "threshold": 0.8, "actions": [{"pager": "x"}]}]}, r"alerts\[0\]\.actions\[0\]: an action needs exactly one of"),
    ({"alerts": [{"metric": "auc", "op": "<", "threshold": 0.8, "actions": ["email me"]}]}, "an action is a mapping"),
    ({"alerts": [{"metric": "auc", "op": "<", "threshold": 0.8, "actions": [{"webhook": "not a url"}]}]}, "http\\(s\\) URL"),
    ({"alerts": [{"metric": "auc", "op": "<", "threshold": 0.8, "actions": [{"webhook": "http://x", "retries": 99}]}]}, "retries"),
    ({"alerts": [{"metric": "auc", "op": "<", "threshold": 0.8, "cooldown": "soon"}]}, "invalid duration"),
    ({"alerts": [{"metric": "auc", "op": "<", "threshold": 0.8, "colour": "red"}]}, "colour: unknown field"),
    ({"alerts": [{"drift": {"column": "amount"}}]}, "exactly one of psi"),
    ({"alerts": [{"drift": {"column": "amount", "psi": "> 0.2"}, "metric": "auc"}]}, "either drift or metric"),
    ({"on_failure": [{"email": "not-an-address"}]}, r"on_failure\[0\]\.email"),
    ({"on_missed_schedule": [{"retrain": "nope"}]}, r"on_missed_schedule\[0\]: retrain names unknown job"),
    ({"alerts": "auc < 0.8"}, "alerts must be a list"),
    ({"name": "score", "alerts": [{"metric": "auc", "op": "<", "threshold": 0.8, "cooldown": 0, "actions": [{"retrain": "score"}]}]},
     "retrains its own job .* needs a cooldown of at least 60s"),
])
def test_validate_rules_rejects_bad_specs(spec, message):
    from mlscale_sdk import monitor
    with pytest.raises(monitor.RuleError, match=message):
        monitor.validate_rules(spec, known_jobs=["train", "score"])


def test_validate_rules_accepts_good_specs():
    from mlscale_sdk import monitor
    r = monitor.validate_rules(GOOD, known_jobs=["train"])
    assert r.alerts[0].cooldown == 3600 and isinstance(r.alerts[0].actions[0], monitor.RetrainAction)
    r = monitor.validate_rules({"name": "train", "on_failure": [{"retrain": "train"}]}, known_jobs=[])   # itself counts as known
    assert r.on_failure[0].retrain == "train"
    r = monitor.validate_rules({"alerts": [{"drift": {"column": "amount", "psi": "> 0.2"}, "cooldown": "30m",
                                            "actions": [{"slack": "https://hooks.example.com/a"}, {"email": ["a@x.org", "b@x.org"]}]}]})
    assert r.alerts[0].cooldown == 1800 and r.alerts[0].actions[0].format == "slack"
    assert monitor.validate_rules(GOOD).alerts[0].key == "auc < 0.8"    # known_jobs=None: retrain targets not checked


# ---------------------------------------------------------------- actions against real receivers

def test_webhook_retries_after_500_with_backoff(receiver):
    from mlscale_sdk import monitor
    receiver.codes[:] = [500, 503]
    out = monitor.send_webhook(receiver.url + "/hook", {"text": "hello"}, retries=3, backoff=0.2)
    assert out == {"status": 200, "attempts": 3}
    assert [r["code"] for r in receiver.requests] == [500, 503, 200]
    assert all(json.loads(r["body"]) == {"text": "hello"} for r in receiver.requests)
    gaps = [b["t"] - a["t"] for a, b in zip(receiver.requests, receiver.requests[1:])]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.38, gaps   # 0.2 s, then doubled


def test_webhook_gives_up_and_does_not_retry_client_errors(receiver):
    from mlscale_sdk import monitor
    receiver.codes[:] = [500, 500, 500]
    with pytest.raises(monitor.ActionError, match="failed after 3 attempt"):
        monitor.send_webhook(receiver.url, {"text": "x"}, retries=2, backoff=0.01)
    receiver.requests.clear(); receiver.codes[:] = [404]
    with pytest.raises(monitor.ActionError, match="HTTP 404.*not retried"):
        monitor.send_webhook(receiver.url, {"text": "x"}, retries=3, backoff=0.01)
    assert len(receiver.requests) == 1
    with pytest.raises(monitor.ActionError, match="ConnectionRefused|URLError"):
        monitor.send_webhook(f"http://127.0.0.1:{free_port()}/", {"text": "x"}, retries=1, backoff=0.01, timeout=2)


def test_email_through_a_real_smtp_server(project, smtp_server, monkeypatch):
    from mlscale_sdk import monitor
    monkeypatch.setenv("MLSCALE_SMTP_HOST", "127.0.0.1"); monkeypatch.setenv("MLSCALE_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("MLSCALE_SMTP_FROM", "mlscale@example.org")
    a = monitor.fire("scoring", "auc < 0.8", "[mlscale] job scoring: auc = 0.7 < 0.8", [{"email": ["ml@example.org", "oncall@example.org"]}],
                     value=0.7, threshold=0.8)
    assert a.ok, a.actions
    assert len(smtp_server.mails) == 1
    mail = smtp_server.mails[0]
    assert mail["from"] == "mlscale@example.org" and mail["to"] == ["ml@example.org", "oncall@example.org"]
    assert "Subject: [mlscale] job scoring: auc = 0.7 < 0.8" in mail["data"] and "threshold: 0.8" in mail["data"]
    # an unreachable server: recorded as a failed action, the caller is not broken
    b = monitor.fire("scoring", "other", "text", [{"email": "a@example.org", "smtp_port": free_port(), "smtp_host": "127.0.0.1"}])
    assert not b.ok and "email to a@example.org via 127.0.0.1" in b.actions[0]["error"]
    assert [x["ok"] for x in monitor.recent_alerts()] == [False, True]


def test_below_threshold_fires_once_per_cooldown_window(project, in_job, receiver):
    "A flapping metric: one alert per cooldown window, even across many low runs."
    from mlscale_sdk import monitor
    rules = monitor.validate_rules({"alerts": [{"metric": "hit_rate", "op": "<", "threshold": 0.5, "cooldown": 2,
                                                "actions": [{"slack": receiver.url + "/slack"}]}]})
    fired = []
    t0 = time.monotonic()
    for i, v in enumerate([0.4, 0.3, 0.9, 0.2, 0.45]):       # low, low, recovers, low, low: all inside 2 s
        in_job("scoring", f"c-{i}")
        monitor.log_metric("hit_rate", v, mlflow=False)
        fired += monitor.check_alerts("scoring", rules, f"c-{i}")
    assert time.monotonic() - t0 < 2, "the loop must finish inside one cooldown window for this test to mean anything"
    assert len(fired) == 1 and len(receiver.requests) == 1
    assert json.loads(receiver.requests[0]["body"]) == {"text": "[mlscale] job scoring: hit_rate = 0.4 < 0.5 (rule: hit_rate < 0.5; run c-0)"}
    time.sleep(max(0.0, fired[0].fired_at.timestamp() + 2.05 - time.time()))   # the window opened at the first alert
    in_job("scoring", "c-5")
    monitor.log_metric("hit_rate", 0.1, mlflow=False)
    assert len(monitor.check_alerts("scoring", rules, "c-5")) == 1     # the next window
    assert len(receiver.requests) == 2
    eng, T = monitor._tables()
    with eng.connect() as c:
        st = c.execute(T.state.select()).mappings().one()
    assert (st["fired"], st["suppressed"]) == (2, 3)


def test_concurrent_evaluations_fire_once(project, receiver):
    from mlscale_sdk import monitor
    out = []
    def go(): out.append(monitor.fire("j", "r", "m", [{"webhook": receiver.url}], cooldown=60))
    ts = [threading.Thread(target=go) for _ in range(8)]
    [t.start() for t in ts]; [t.join() for t in ts]
    assert sum(a is not None for a in out) == 1 and len(receiver.requests) == 1


def test_for_runs_and_labels(project, in_job, receiver):
    from mlscale_sdk import monitor
    rules = monitor.validate_rules({"alerts": [{"metric": "hit_rate", "op": "<", "threshold": 0.5, "for_runs": 2,
                                                "labels": {"segment": "EU"}, "actions": [{"webhook": receiver.url}]}]})
    got = []
    for i, (eu, us) in enumerate([(0.4, 0.1), (0.6, 0.1), (0.4, 0.1), (0.3, 0.1)]):
        in_job("scoring", f"f-{i}")
        monitor.log_metric("hit_rate", eu, mlflow=False, segment="EU"); monitor.log_metric("hit_rate", us, mlflow=False, segment="US")
        got.append(len(monitor.check_alerts("scoring", rules, f"f-{i}")))
    assert got == [0, 0, 0, 1]          # two EU breaches in a row only at the end; US never counts
    body = json.loads(receiver.requests[0]["body"])
    assert body["labels"] == {"segment": "EU"} and body["value"] == 0.3 and body["threshold"] == 0.5 and body["run_id"] == "f-3"


def test_failed_run_fires_on_failure_once_and_not_before_the_last_retry(project, receiver, smtp_server, monkeypatch):
    from mlscale_sdk import monitor
    monkeypatch.setenv("MLSCALE_SMTP_HOST", "127.0.0.1"); monkeypatch.setenv("MLSCALE_SMTP_PORT", str(smtp_server.port))
    job = SimpleNamespace(name="etl", spec={"on_failure": [{"webhook": receiver.url}, {"email": "oncall@example.org"}]})
    assert monitor.on_run_finished(job, _run("x-1", status="failed", error="boom", retrying=True)) == []
    fired = monitor.on_run_finished(job, _run("x-1", status="failed", attempt=2, error="ValueError: boom\nmore"))
    assert len(fired) == 1 and fired[0].ok and fired[0].kind == "failure"
    assert monitor.on_run_finished(job, _run("x-1", status="failed", attempt=2, error="boom")) == []   # reported twice
    assert len(receiver.requests) == 1 and len(smtp_server.mails) == 1
    body = json.loads(receiver.requests[0]["body"])
    assert body["text"] == "[mlscale] job etl run x-1 failed (attempt 2): ValueError: boom" and body["status"] == "failed"
    assert monitor.on_run_finished(job, _run("x-2", status="succeeded")) == []


def test_missed_schedule_fires_its_actions(project, receiver):
    from mlscale_sdk import monitor
    job = SimpleNamespace(name="hourly", spec={"on_missed_schedule": [{"slack": receiver.url, "backoff": 1}]})
    receiver.codes[:] = [500]          # a slow receiver: the retry waits 1 s, in the background
    slots = [datetime(2026, 1, 1, h, tzinfo=timezone.utc) for h in range(3)]
    t0 = time.monotonic()
    a = monitor.on_missed_schedule(job, slots)
    assert time.monotonic() - t0 < 1.5, "the scheduler's loop must not wait for the actions"
    assert a.wait(30).ok and a.value == 3 and json.loads(receiver.requests[1]["body"])["text"].startswith("[mlscale] job hourly: 3 scheduled run(s) skipped: 2026-01-01 00:00:00+00:00")
    assert monitor.on_missed_schedule(job, slots) is None     # the same gap reported again: deduplicated
    assert monitor.recent_alerts(1)[0]["kind"] == "missed_schedule"


def test_hooks_never_raise(project, caplog):
    from mlscale_sdk import monitor
    bad = SimpleNamespace(name="j", spec={"alerts": [{"metric": "auc", "op": "=>"}]})
    assert monitor.on_run_finished(bad, _run("h-1")) == []
    assert monitor.on_missed_schedule(bad, [1]) is None


def test_panel_queries(project, in_job):
    from mlscale_sdk import monitor
    for i, v in enumerate([0.9, 0.85, 0.7]):
        in_job("scoring", f"s-{i}")
        monitor.log_metric("auc", v, mlflow=False); monitor.log_metric("auc", v - 0.1, mlflow=False, segment="EU")
    assert [p["value"] for p in monitor.metric_series("scoring", "auc", labels={})] == [0.9, 0.8, 0.85, 0.75, 0.7, pytest.approx(0.6)]
    assert [p["run_id"] for p in monitor.metric_series("scoring", "auc", labels={"segment": "EU"})] == ["s-0", "s-1", "s-2"]
    assert [p["value"] for p in monitor.metric_series("scoring", "auc", limit=2)] == [0.7, pytest.approx(0.6)]
    monitor.fire("scoring", "r1", "first"); monitor.fire("scoring", "r2", "second"); monitor.fire("other", "r3", "third")
    assert [a["message"] for a in monitor.recent_alerts(2)] == ["third", "second"]
    assert [a["message"] for a in monitor.recent_alerts(job="scoring")] == ["second", "first"]
    assert monitor.metric_names("scoring") == [{"name": "auc", "labels": [{}, {"segment": "EU"}], "last_value": pytest.approx(0.6),
                                                "last_ts": monitor.metric_series("scoring", "auc")[-1]["ts"]}]
    json.dumps(monitor.recent_alerts()); json.dumps(monitor.metric_series("scoring", "auc"))


# ---------------------------------------------------------------- drift

def _frames(n, shift=0.0, seed=0, p=(0.5, 0.3, 0.2)):
    import numpy as np, pandas as pd
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(shift, 1, n), "y": rng.exponential(1, n), "k": rng.integers(0, 20, n),
                         "seg": pd.Categorical(rng.choice(["a", "b", "c"], n, p=list(p)))})


def test_drift_on_constructed_data_and_ks_agrees_with_scipy():
    import dask.dataframe as dd
    from scipy import stats
    from mlscale_sdk import monitor
    ref = _frames(200_000, seed=1)
    same = _frames(150_000, seed=2)
    moved = _frames(150_000, shift=0.5, seed=3, p=(0.3, 0.3, 0.4))
    r0 = monitor.drift(dd.from_pandas(ref, npartitions=7), dd.from_pandas(same, npartitions=5))
    r1 = monitor.drift(ref, moved)
    assert set(r0.table["column"]) == {"x", "y", "k", "seg"}
    for c in ("x", "y", "k", "seg"):
        assert r0[c]["psi"] < 0.01, (c, r0[c])
    assert r0.drifted == []
    assert r1["x"]["psi"] > 0.2 and r1["seg"]["psi"] > 0.1 and r1["y"]["psi"] < 0.01
    assert "x" in r1.drifted and "y" not in r1.drifted
    for res, cur in ((r0, same), (r1, moved)):
        for c in ("x", "y"):
            ks = stats.ks_2samp(ref[c], cur[c])
            assert abs(res[c]["ks"] - ks.statistic) < 0.005, (c, res[c]["ks"], ks.statistic)
            assert res[c]["ks"] <= ks.statistic + 1e-9     # ECDFs exact at the edges: never an overestimate
    assert r1["x"]["ks_pvalue"] < 1e-12 and r0["x"]["ks_pvalue"] > 1e-4
    assert r1["seg"]["chi2_pvalue"] < 1e-12 and r0["seg"]["chi2_pvalue"] > 1e-4
    html = r1._repr_html_()
    assert "<table" in html and "data:image/png;base64," in html and "approximate" in r1.note
    fig = r1.plot(["x", "seg"])
    assert len(fig.axes) == 2 and "PSI" in fig.axes[0].get_title()


def test_drift_with_nulls_and_bad_input(tmp_path):
    import numpy as np
    from mlscale_sdk import monitor
    ref, cur = _frames(20_000, seed=1), _frames(20_000, seed=2)
    cur.loc[:4999, "x"] = np.nan
    r = monitor.drift(ref, cur, columns=["x"])
    assert r["x"]["null_current"] == 5000 and r["x"]["psi"] > 0.2 and r.bins["x"]["labels"][-1] == "<null>"
    with pytest.raises(ValueError, match="current has no column\\(s\\) 'nope'"):
        monitor.drift(ref, cur.drop(columns=["y"]).assign(), columns=["x", "nope"])
    with pytest.raises(ValueError, match="column 'x' is numeric \\(float64\\) in the reference but categorical \\((object|string)\\) in the current data"):
        monitor.drift(ref, cur.assign(x=cur.x.astype(str)), columns=["x", "y"])
    with pytest.raises(ValueError, match="bins must be an integer >= 2"):
        monitor.drift(ref, cur, bins=1)
    with pytest.raises(FileNotFoundError, match="no data at"):
        monitor.drift(tmp_path / "missing", cur)
    with pytest.raises(ValueError, match="Dask or pandas DataFrame or a Parquet path"):
        monitor.drift([1, 2, 3], cur)


def test_drift_on_parquet_made_by_make_transactions(project, in_job):
    from mlscale_sdk import monitor
    from mlscale_sdk.data import make_transactions, write_parquet
    ref = write_parquet(make_transactions(60_000, seed=0), project / "ref")
    cur = make_transactions(60_000, seed=0)
    cur = write_parquet(cur.assign(amount=cur.amount * 2), project / "cur")
    r = monitor.drift(ref, cur, columns=["amount", "merchant_category", "channel"])
    assert r["amount"]["psi"] > 0.2 and r["merchant_category"]["psi"] < 1e-9 and r["channel"]["psi"] < 1e-9
    in_job("drift-check", "d-1")
    r.log()
    m = monitor.run_metrics("d-1")
    assert m['drift_psi{column="amount"}'] == pytest.approx(r["amount"]["psi"]) and 'drift_chi2_pvalue{column="channel"}' in m
    rules = monitor.validate_rules({"alerts": [{"drift": {"column": "amount", "psi": "> 0.2"}}, {"drift": {"column": "channel", "psi": "> 0.2"}}]})
    assert [a.rule for a in monitor.check_alerts("drift-check", rules, "d-1")] == ['drift_psi{column="amount"} > 0.2']


def _gen(i, shift=0.0, rows=1_000_000):
    import numpy as np, pandas as pd
    rng = np.random.default_rng([i, int(shift * 1000)])
    return pd.DataFrame({"x": rng.normal(shift, 1, rows), "y": rng.exponential(1.0, rows)})


@pytest.mark.slow
def test_drift_on_data_several_times_larger_than_a_worker_memory_limit(project):
    "2 x 640 MB of generated data through workers limited to 400 MiB each: no worker is lost, results are right."
    import dask.dataframe as dd
    from distributed import LocalCluster, Client
    from mlscale_sdk import monitor
    nparts, limit = 40, 400 * 2**20
    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=limit, dashboard_address=":0") as lc, Client(lc) as c:
        workers = set(c.scheduler_info()["workers"])
        meta = _gen(0, rows=0)
        ref = dd.from_map(_gen, range(nparts), meta=meta)
        cur = dd.from_map(_gen, range(nparts), [0.3] * nparts, meta=meta)
        size = nparts * 1_000_000 * 2 * 8
        assert size >= 1.5 * limit and 2 * size >= 3 * limit
        r = monitor.drift(ref, cur, client=c)
        assert set(c.scheduler_info()["workers"]) == workers, "a worker was restarted (out of memory?)"
    assert r["x"]["n_reference"] == r["x"]["n_current"] == nparts * 1_000_000
    assert 0.05 < r["x"]["psi"] < 0.15 and r["y"]["psi"] < 0.001
    assert abs(r["x"]["ks"] - 0.1192) < 0.005     # KS of N(0,1) vs N(0.3,1): 2*Phi(0.15)-1 = 0.1192


# ---------------------------------------------------------------- templates

def test_grafana_dashboard_queries_our_series(project, in_job):
    from mlscale_sdk import monitor
    dash = json.loads((ROOT / "templates" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(dash["panels"]) >= 8 and all(p["datasource"]["type"] == "prometheus" for p in dash["panels"])
    in_job("j", "g-1"); monitor.log_metric("drift_psi", 0.3, mlflow=False, column="amount")
    monitor.on_run_finished(SimpleNamespace(name="j", spec={}), _run("g-1"))
    monitor.fire("j", "r", "m")
    served = set(_parse(monitor.metrics_text()))
    import re
    used = {m for e in exprs for m in re.findall(r"\b(mlscale_[a-z_]+)\{", e)}   # series selectors
    assert used and all(m in served or m.removesuffix("_total") in served for m in used), used - served


def test_drift_check_template_runs_unchanged_as_a_job_and_its_drift_rule_fires(project, receiver):
    "templates/drift_check.ipynb, copied as is, promoted with a drift rule, run by the job runner (papermill)."
    from mlscale_sdk import jobs as J
    from mlscale_sdk import monitor
    nb = shutil.copy(ROOT / "templates" / "drift_check.ipynb", project / "drift_check.ipynb")
    rules = [{"drift": {"column": "amount", "psi": "> 0.2"}, "actions": [{"slack": receiver.url}]},
             {"drift": {"column": "channel", "psi": "> 0.2"}, "actions": [{"slack": receiver.url}]}]
    J.promote(nb, name="drift-check", parameters={"n_rows": 30_000}, alerts=rules)
    r = J.run_now("drift-check", parameters={"shift": 1.0}, wait=True, timeout=240)
    assert r.status == "succeeded", r.error
    m = monitor.run_metrics(r.id)
    assert m['drift_psi{column="amount"}'] > 0.2 and m['drift_psi{column="channel"}'] < 0.05 and 'drift_ks{column="customer_age"}' in m
    assert (project / ".mlscale" / "data" / "drift_demo" / "reference").is_dir()
    wait_for(lambda: len(receiver.requests) == 1, timeout=60, what="the drift alert")
    assert json.loads(receiver.requests[0]["body"])["text"].startswith('[mlscale] job drift-check: drift_psi{column="amount"} = ')
    time.sleep(0.5)
    assert len(receiver.requests) == 1                      # channel did not drift


# ---------------------------------------------------------------- with real jobs (mlscale_sdk.jobs)

def _job_nb(path, params, body):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell(params); c.metadata["tags"] = ["parameters"]
    nb.cells = [c, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


def test_retrain_action_queues_a_real_run_of_the_other_job(project, receiver):
    "score logs a low AUC -> its rule fires -> `retrain: train` -> a real run of train (the feedback loop)."
    from mlscale_sdk import jobs as J
    from mlscale_sdk import monitor
    J.promote(_job_nb(project / "train.ipynb", "rows = 100", "from mlscale_sdk import monitor\nmonitor.log_metric('rows_trained', rows)"))
    rule = {"metric": "auc", "op": "<", "threshold": 0.8, "actions": [{"retrain": "train"}, {"slack": receiver.url}]}
    with pytest.raises(J.JobValidationError, match="retrain names unknown job 'trian'"):
        J.promote(_job_nb(project / "score.ipynb", "auc = 0.9", "pass"), alerts=[{**rule, "actions": [{"retrain": "trian"}]}])
    with pytest.raises(J.JobValidationError, match=r"alerts\[0\]\.op"):
        J.promote(project / "score.ipynb", alerts=[{**rule, "op": "=>"}])
    assert [j.name for j in J.list_jobs()] == ["train"]       # nothing stored by the rejected promotes
    J.promote(_job_nb(project / "score.ipynb", "auc = 0.9",
                      "from mlscale_sdk import monitor\nmonitor.log_metrics({'auc': auc, 'rows_scored': 500})"), alerts=[rule])
    low = J.run_now("score", parameters={"auc": 0.6}, wait=True, timeout=180)
    assert low.status == "succeeded", low.error
    wait_for(lambda: any(a["kind"] == "alert" and all(x["ok"] is not None for x in a["actions"]) for a in monitor.recent_alerts()),
             timeout=60, what="the alert and its actions")
    alert = monitor.recent_alerts()[0]
    assert alert["run_id"] == low.id and alert["value"] == 0.6 and all(a["ok"] for a in alert["actions"]), alert
    retrain_run = alert["actions"][0]["result"]["run_id"]
    assert json.loads(receiver.requests[0]["body"])["text"].startswith("[mlscale] job score: auc = 0.6 < 0.8")
    r = J.wait_run(retrain_run, timeout=180)
    assert r.job == "train" and r.status == "succeeded" and r.trigger == "manual", (r.status, r.error)
    assert monitor.run_metrics(r.id) == {"rows_trained": 100.0}
    wait_for(lambda: r.id in {x["run_id"] for x in monitor.run_reports()}, timeout=30, what="the train run's report")
    reports = {x["run_id"]: x for x in monitor.run_reports()}
    assert reports[low.id]["rows_scored"] == 500 and reports[low.id]["status"] == "succeeded"
    assert len(J.history("train")) == 1                         # exactly one retrain


def test_a_failing_job_fires_on_failure(project, receiver):
    from mlscale_sdk import jobs as J
    from mlscale_sdk import monitor
    body = "from mlscale_sdk import monitor\nmonitor.log_metric('rows_scored', rows)\nraise RuntimeError(f'source table empty ({rows})')"
    J.promote(_job_nb(project / "etl.ipynb", "rows = 1", body),
              on_failure=[{"webhook": receiver.url + "/hook", "retries": 2, "backoff": 0.1}])
    receiver.codes.append(500)                                # the receiver hiccups once: the post is retried
    r = J.run_now("etl", wait=True, timeout=180)
    assert r.status == "failed"
    wait_for(lambda: len(receiver.requests) == 2, timeout=60, what="the on_failure webhook")
    body = json.loads(receiver.requests[1]["body"])
    assert [q["code"] for q in receiver.requests] == [500, 200]
    assert body["kind"] == "failure" and body["run_id"] == r.id and "RuntimeError: source table empty (1)" in body["text"]
    fams = _parse(monitor.metrics_text())
    assert _samples(fams, "mlscale_job_last_run_success", mlscale_job="etl")[0].value == 0
    assert _samples(fams, "mlscale_alerts", mlscale_job="etl", kind="failure")[0].value == 1
    assert _samples(fams, "mlscale_job_last_run_rows", mlscale_job="etl", kind="scored")[0].value == 1
    # the MLflow run log_metric made in the kernel ends with the job's status, not the kernel's clean exit
    from mlscale_sdk.tracking import client
    assert r.mlflow_run_id, "the job runner linked the MLflow run"
    info = client().get_run(r.mlflow_run_id)
    assert info.info.status == "FAILED" and info.data.tags["mlscale.job_status"] == "failed"


def test_cli_drift_and_alerts(project):
    from conftest import mlscale
    from mlscale_sdk.data import make_transactions, write_parquet
    ref = write_parquet(make_transactions(20_000, seed=0), project / "ref")
    cur = make_transactions(20_000, seed=0)
    cur = write_parquet(cur.assign(amount=cur.amount * 3), project / "cur")
    env = {"MLSCALE_HOME": str(project)}
    r = mlscale("monitor", "drift", str(ref), str(cur), "-c", "amount", "-c", "channel", "--json", "--fail-on-drift", env=env, check=False)
    assert r.returncode == 2, r.stdout + r.stderr
    rows = {x["column"]: x for x in json.loads(r.stdout)}
    assert rows["amount"]["drifted"] and not rows["channel"]["drifted"]
    r = mlscale("monitor", "drift", str(ref), str(cur), "-c", "nope", env=env, check=False)
    assert r.returncode == 1 and "Error: reference has no column(s) 'nope'" in r.stderr, r.stderr
    assert mlscale("monitor", "alerts", env=env).stdout == "no alerts\n"


from test_jobs import postgres  # noqa: F401,E402  (the jobs tests' real PostgreSQL server, in a temp dir)


def test_postgresql_state_store(project, postgres, monkeypatch, in_job, receiver):
    "The monitor's tables, the cooldown claim and the /metrics queries on a real PostgreSQL."
    from mlscale_sdk.config import settings
    from mlscale_sdk import monitor
    monkeypatch.setenv("MLSCALE_STATE_DB", postgres); settings.cache_clear()
    rules = monitor.validate_rules({"alerts": [{"metric": "auc", "op": "<", "threshold": 0.8, "cooldown": 600,
                                                "actions": [{"webhook": receiver.url}]}]})
    for i in range(3):
        in_job("pg-job", f"pg-{i}")
        monitor.log_metric("auc", 0.5, mlflow=False, segment="EU")
        monitor.on_run_finished(SimpleNamespace(name="pg-job", spec={}), _run(f"pg-{i}"))
        monitor.check_alerts("pg-job", rules, f"pg-{i}")
    assert len(receiver.requests) == 1 and len(monitor.recent_alerts()) == 1
    fams = _parse(monitor.metrics_text())
    assert _samples(fams, "mlscale_job_metric", mlscale_job="pg-job", metric="auc", segment="EU")[0].value == 0.5
    assert _samples(fams, "mlscale_job_runs", mlscale_job="pg-job", status="succeeded")[0].value == 3
    assert not (project / ".mlscale" / "state.db").exists()


def _start_scheduler(project, **env):
    from conftest import BIN
    log = open(project / f"scheduler-{time.monotonic_ns()}.log", "w+")
    p = subprocess.Popen([str(BIN / "mlscale"), "scheduler", "run", "--poll", "0.1", "--backend", "noop"],
                         env={**os.environ, "MLSCALE_HOME": str(project), **env}, stdout=log, stderr=subprocess.STDOUT)
    return p, log


def test_real_scheduler_missed_slots_fire_on_missed_schedule(project, receiver):
    "A real `mlscale scheduler run` finds slots missed while it was down; catchup='none' skips them -> the hook's webhook."
    from mlscale_sdk import jobs as J
    from mlscale_sdk import monitor
    J.promote(_job_nb(project / "tick.ipynb", "x = 1", "pass"), name="tick", schedule="* * * * * *", catchup="none",
              on_missed_schedule=[{"webhook": receiver.url}])
    time.sleep(3.5)                                   # slots pass with no scheduler
    p, log = _start_scheduler(project, MLSCALE_METRICS_PORT="off")
    try:
        wait_for(lambda: receiver.requests, timeout=60, what="the on_missed_schedule webhook")
    finally:
        p.terminate(); p.wait(60)
    body = json.loads(receiver.requests[0]["body"])
    assert body["kind"] == "missed_schedule" and body["job"] == "tick" and len(body["slots"]) >= 2, body
    assert body["text"].startswith(f"[mlscale] job tick: {len(body['slots'])} scheduled run(s) skipped")
    assert "missed_schedule" in {a["kind"] for a in monitor.recent_alerts(job="tick")}   # (stopping it may add an interrupted-run failure)


def test_real_scheduler_serves_metrics(project):
    "The scheduler process serves /metrics (MLSCALE_METRICS_PORT) with the series of the runs it ran."
    from mlscale_sdk import jobs as J
    J.promote(_job_nb(project / "quick.ipynb", "x = 1", "pass"), name="quick")
    port = free_port()
    p, log = _start_scheduler(project, MLSCALE_METRICS_PORT=str(port), MLSCALE_METRICS_ADDR="127.0.0.1")
    try:
        def scrape():
            try: return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError: return None
        wait_for(scrape, timeout=60, what="/metrics on the scheduler")
        r = J.run_now("quick", wait=True, timeout=120)
        assert r.status == "succeeded", r.error
        wait_for(lambda: _samples(_parse(scrape()), "mlscale_job_runs", mlscale_job="quick"), timeout=30, what="the run in /metrics")
        assert _samples(_parse(scrape()), "mlscale_job_last_run_success", mlscale_job="quick")[0].value == 1
    finally:
        p.terminate(); p.wait(60)


# ---------------------------------------------------------------- secrets (issue 11)

@pytest.fixture
def smtp_pair():
    "Two loopback SMTP servers recording AUTH logins and mail: [the configured one, one a job spec names]."
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
    servers = []
    for _ in range(2):
        rec = SimpleNamespace(logins=[], mails=[])
        def auth(server, session, envelope, mechanism, data, rec=rec):
            rec.logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=True)
        class Handler:
            async def handle_DATA(self, server, session, envelope, rec=rec):
                rec.mails.append(list(envelope.rcpt_tos)); return "250 OK"
        rec.ctl = Controller(Handler(), hostname="127.0.0.1", port=free_port(), authenticator=auth, auth_require_tls=False)
        rec.ctl.start(); rec.port = rec.ctl.port
        servers.append(rec)
    yield servers
    for rec in servers: rec.ctl.stop()


def test_smtp_credentials_go_only_to_the_configured_server_and_over_starttls(project, smtp_pair, monkeypatch):
    from mlscale_sdk import monitor
    conf, other = smtp_pair
    monkeypatch.setenv("MLSCALE_SMTP_HOST", "127.0.0.1"); monkeypatch.setenv("MLSCALE_SMTP_PORT", str(conf.port))
    monkeypatch.setenv("MLSCALE_SMTP_USER", "mlscale"); monkeypatch.setenv("MLSCALE_SMTP_PASSWORD", "s3cr3t")
    own = {"email": "a@example.org", "smtp_host": "127.0.0.1", "smtp_port": other.port, "starttls": False}
    with pytest.raises(monitor.RuleError, match=r"on_failure\[0\]: smtp_host/smtp_port may not be set while the server has SMTP"):
        monitor.validate_rules({"on_failure": [own]})
    # a spec stored before (or a direct call): refused at send time, recorded as the action's outcome
    for i, act in enumerate([own, {**own, "smtp_host": "localhost", "smtp_port": conf.port}]):
        a = monitor.fire("j", f"own{i}", "m", [act])
        assert not a.ok and "refused: the SMTP credentials (MLSCALE_SMTP_USER) go only to the configured" in a.actions[0]["error"]
    # the configured server offers no STARTTLS: with credentials it is required (a spec cannot turn it off)
    b = monitor.fire("j", "tls", "m", [{"email": "a@example.org", "starttls": False}])
    assert not b.ok and "STARTTLS extension not supported" in b.actions[0]["error"], b.actions
    assert other.logins == other.mails == conf.logins == conf.mails == []
    monkeypatch.setenv("MLSCALE_SMTP_STARTTLS", "false")             # a local relay: the setting turns it off
    c = monitor.fire("j", "relay", "m", [{"email": "a@example.org"}])
    assert c.ok, c.actions
    assert conf.logins == [("mlscale", "s3cr3t")] and conf.mails == [["a@example.org"]] and other.logins == other.mails == []
    assert "s3cr3t" not in json.dumps(monitor.recent_alerts())


def test_webhooks_to_internal_addresses_are_refused_unless_allowed(project, receiver, monkeypatch):
    from mlscale_sdk import monitor
    monkeypatch.delenv("MLSCALE_ALLOW_PRIVATE_WEBHOOKS")
    urls = [receiver.url + "/hook", f"http://localhost:{receiver.server_port}/", "http://169.254.169.254/latest/meta-data",
            "http://[::1]:9/", "http://10.1.2.3/", "http://[::ffff:127.0.0.1]:9/"]
    for i, url in enumerate(urls):
        a = monitor.fire("j", f"r{i}", "m", [{"webhook": url, "retries": 0}])          # never raises into the caller
        assert not a.ok and "an internal address" in a.actions[0]["error"] and "allow_private_webhooks" in a.actions[0]["error"]
    assert receiver.requests == []
    assert [x["ok"] for x in monitor.recent_alerts(len(urls))] == [False] * len(urls)
    monkeypatch.setenv("MLSCALE_ALLOW_PRIVATE_WEBHOOKS", "1")
    assert monitor.fire("j", "allowed", "m", [{"webhook": receiver.url + "/hook"}]).ok and len(receiver.requests) == 1
    monkeypatch.delenv("MLSCALE_ALLOW_PRIVATE_WEBHOOKS")
    (project / "pyproject.toml").write_text("[tool.mlscale]\nallow_private_webhooks = true\n")   # or the project setting
    assert monitor.fire("j", "project", "m", [{"webhook": receiver.url + "/hook"}]).ok and len(receiver.requests) == 2
    # a redirect is not followed (it could lead to an internal address)
    receiver.codes[:] = [302]
    r = monitor.fire("j", "redirect", "m", [{"webhook": receiver.url + "/hook"}])
    assert not r.ok and "HTTP 302" in r.actions[0]["error"] and [q["path"] for q in receiver.requests[2:]] == ["/hook"]


def test_webhook_secrets_are_referenced_resolved_when_sent_and_never_shown(project, receiver, monkeypatch):
    "`${ENV}` in url and headers: the receiver gets the secret; alerts, the CLI and log lines never show one."
    import logging
    from click.testing import CliRunner
    from mlscale_sdk import jobs as J
    from mlscale_sdk import monitor
    from mlscale_sdk.cli import main
    records = []
    h = logging.Handler(); h.emit = lambda r: records.append(r.getMessage())
    logging.getLogger("mlscale").addHandler(h)
    try:
        monkeypatch.setenv("HOOK_TOKEN", "s3cr3t-env")
        ref = {"webhook": receiver.url + "/hook?token=${HOOK_TOKEN}", "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}}
        literal = {"webhook": receiver.url + "/hook?token=abc123", "headers": {"Authorization": "Bearer s3cr3t"},
                   "retries": 1, "backoff": 0.01}
        body = "raise RuntimeError('boom')"
        J.promote(_job_nb(project / "etl.ipynb", "rows = 1", body), on_failure=[ref, literal])
        assert J.get_job("etl").spec.on_failure[0] == ref                  # stored as referenced, not resolved
        receiver.codes[:] = [200, 500]                                     # the literal one fails once (a logged retry)
        r = J.run_now("etl", wait=True, timeout=180)
        assert r.status == "failed"
        wait_for(lambda: len(receiver.requests) == 3, timeout=60, what="the on_failure webhooks")
        sent = receiver.requests[0]
        assert sent["path"] == "/hook?token=s3cr3t-env" and sent["headers"]["Authorization"] == "Bearer s3cr3t-env"
        wait_for(lambda: monitor.recent_alerts() and all(x["ok"] is not None for x in monitor.recent_alerts()[0]["actions"]),
                 timeout=30, what="the alert's outcome")
        monkeypatch.delenv("HOOK_TOKEN")                                   # an unset reference: a recorded failure
        a = monitor.fire("etl", "unset", "m", [ref, {**literal, "webhook": "http://127.0.0.1:9/x?token=abc123", "retries": 0}])
        assert not a.ok and "environment variable HOOK_TOKEN is not set" in a.actions[0]["error"]
        shown = {
            "alerts": json.dumps(monitor.recent_alerts()),
            "alerts cli": CliRunner().invoke(main, ["monitor", "alerts"]).output
                          + CliRunner().invoke(main, ["monitor", "alerts", "--json"]).output,
            "jobs show": CliRunner().invoke(main, ["jobs", "show", "etl"]).output,
            "jobs list": CliRunner().invoke(main, ["jobs", "list", "--json"]).output,
            "to_dict": json.dumps(J.get_job("etl").to_dict()),
            "logs": "\n".join(records),
            "runner.log": (project / ".mlscale" / "runs" / r.id / "runner.log").read_text(),
        }
        assert "token=***" in shown["alerts"] and "token=${HOOK_TOKEN}" in shown["alerts"] and "Bearer ***" in shown["jobs show"]
        assert "retry 1/1" in shown["runner.log"] and "token=***" in shown["runner.log"]
        for where, text in shown.items():
            for secret in ("abc123", "s3cr3t"):
                assert secret not in text, (where, text)
    finally:
        logging.getLogger("mlscale").removeHandler(h)


def test_state_db_and_run_logs_are_owner_only(project):
    import stat
    from mlscale_sdk import store
    from mlscale_sdk.jobs import runner, runs
    store.ensure_schema()
    assert stat.S_IMODE((project / ".mlscale" / "state.db").stat().st_mode) == 0o600
    pid = runner.spawn_runner("no-such-run")                 # the runner fails (no such run); its log exists first
    os.waitpid(pid, 0)
    assert stat.S_IMODE((runs.run_dir("no-such-run") / "runner.log").stat().st_mode) == 0o600
