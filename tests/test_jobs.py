"""Jobs: promote/validate/snapshot, the SQL store (SQLite and a real PostgreSQL), the papermill run executor
(env, MLflow link, failures, retries with backoff, timeouts that kill the kernel's whole tree); export: test_export.py."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import nbformat
import pytest
import yaml

from conftest import BIN, ROOT, free_port, mlscale, wait_for
from mlscale_sdk import jobs as J


def make_nb(path, params="rows = 10  # rows\nscale: float = 1.0\nlabel = 'x'", body="print(label, rows * scale)", tagged=True, cells=None):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell(params)
    if tagged:
        c.metadata["tags"] = ["parameters"]
    nb.cells = [c] + [nbformat.v4.new_code_cell(b) for b in ([body] if cells is None else cells)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def store_state(project):
    "Everything a failed promote must leave alone: the job rows and the snapshot files."
    jobs = [j.to_dict() for j in J.list_jobs()]
    snaps = sorted(str(p.relative_to(project)) for p in (project / ".mlscale" / "jobs").rglob("*")) if (project / ".mlscale" / "jobs").exists() else []
    return jobs, snaps


# ---------------------------------------------------------------- promote and validation

def test_promote_snapshots_versions_and_yaml(project):
    nb = make_nb(project / "nbs" / "hello.ipynb")
    j = J.promote(nb, schedule="0 2 * * *", timezone="Europe/Paris", parameters={"rows": 5}, retries=2, tags={"team": "a"})
    assert (j.name, j.spec.notebook, j.spec.parameters, j.paused) == ("hello", "nbs/hello.ipynb", {"rows": 5}, False)
    snap = project / ".mlscale" / "jobs" / "hello" / f"{j.version}.ipynb"
    assert snap.read_bytes() == nb.read_bytes()
    assert j.next_run_at is not None and j.next_run_at.hour in (0, 1)   # 02:00 Paris in UTC
    same = J.promote(nb, schedule="0 3 * * *", parameters={"rows": 6})
    assert same.version == j.version and len(same.versions) == 1 and same.spec.schedule == "0 3 * * *"
    make_nb(nb, body="print('changed')")
    new = J.promote(nb, schedule="0 3 * * *")
    assert new.version != j.version and [v["version"] for v in new.versions] == [j.version, new.version]
    assert (project / ".mlscale" / "jobs" / "hello" / f"{j.version}.ipynb").exists()   # old snapshot kept
    # the spec as YAML, and back through the CLI
    spec = project / "job.yaml"
    J.make_spec(name="from-yaml", notebook="nbs/hello.ipynb", schedule="*/5 * * * *", catchup="none").to_yaml(spec)
    r = mlscale("jobs", "promote", "--spec", str(spec), "--retries", "3", env={"MLSCALE_HOME": str(project)})
    assert "job from-yaml" in r.stdout
    got = J.get_job("from-yaml").spec
    assert (got.schedule, got.catchup, got.retries) == ("*/5 * * * *", "none", 3)
    r = mlscale("jobs", "list", env={"MLSCALE_HOME": str(project)})
    assert "from-yaml" in r.stdout and "hello" in r.stdout
    assert "<b>job hello</b>" in J.get_job("hello")._repr_html_()


BAD = [
    ("no_params_cell", dict(parameters={"rows": 5}), "add the tag `parameters`"),
    ("unknown_param", dict(parameters={"rowz": 1}), "unknown parameter(s) ['rowz']"),
    ("wrong_type", dict(parameters={"rows": "ten"}), "parameter 'rows' of nbs/nb.ipynb is a int"),
    ("bool_for_int", dict(parameters={"rows": True}), "is a int"),
    ("bad_cron", dict(schedule="0 25 * * *"), "not a valid cron expression"),
    ("cron_fields", dict(schedule="* * *"), "has 3 field(s)"),
    ("bad_tz", dict(schedule="0 2 * * *", timezone="Europe/Atlantis"), "unknown time zone 'Europe/Atlantis'"),
    ("unknown_profile", dict(cluster="no-such-profile"), "no cluster profile named 'no-such-profile'"),
    ("profile_path", dict(cluster="../clusters/local.yaml"), "profile name '../clusters/local.yaml' is not valid"),
    ("outside", dict(), "is outside the project"),
    ("invalid_json", dict(), "cannot be read"),
    ("bad_retries", dict(retries=-1), "retries: Input should be greater than or equal to 0"),
]


@pytest.mark.parametrize("case, kwargs, message", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_are_clear_errors_and_store_unchanged(project, tmp_path_factory, case, kwargs, message):
    good = make_nb(project / "nbs" / "good.ipynb")
    J.promote(good, name="existing", schedule="0 1 * * *")
    nb = project / "nbs" / "nb.ipynb"
    make_nb(nb, tagged=(case != "no_params_cell"))
    if case == "outside":
        nb = make_nb(tmp_path_factory.mktemp("elsewhere") / "nb.ipynb")
    if case == "invalid_json":
        nb.write_text('{"cells": [ this is not json')
    before = store_state(project)
    with pytest.raises(J.JobValidationError) as e:
        J.promote(nb, name="newjob", **kwargs)
    assert message in str(e.value)
    assert store_state(project) == before
    # the CLI: one line, exit 1, no traceback, nothing stored
    args = ["jobs", "promote", str(nb), "--name", "newjob"]
    for k, v in kwargs.items():
        if k == "parameters":
            args += [x for kk, vv in v.items() for x in ("-p", f"{kk}={json.dumps(vv) if not isinstance(vv, str) else vv}")]
        else:
            args += [f"--{k.replace('_', '-')}", str(v)]
    r = mlscale(*args, check=False, env={"MLSCALE_HOME": str(project)})
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert message.split("'")[0].split(":")[0] in r.stderr, r.stderr
    assert store_state(project) == before


def test_unknown_job_and_run_are_lookup_errors(project):
    with pytest.raises(J.JobNotFoundError, match="no job named 'nope'"):
        J.get_job("nope")
    with pytest.raises(J.JobNotFoundError, match="no job run with id"):
        J.get_run("r-123")
    r = mlscale("jobs", "history", "nope", check=False, env={"MLSCALE_HOME": str(project)})
    assert r.returncode == 1 and r.stderr.startswith("Error: no job named 'nope'")


def test_slot_is_unique_in_the_store(project):
    J.promote(make_nb(project / "a.ipynb"), name="a", schedule="* * * * *")
    J.queue_run("a", scheduled_for=1_800_000_000.0, trigger="schedule")
    with pytest.raises(J.JobValidationError, match="already has a run for slot"):
        J.queue_run("a", scheduled_for=1_800_000_000.0, trigger="schedule")
    import sqlalchemy as sa
    t = J.tables()
    with pytest.raises(sa.exc.IntegrityError):
        with t.engine.begin() as c:
            c.execute(t.runs.insert().values(**J.run_row(J.get_job("a"), 1_800_000_000.0)))
    assert len(J.history("a")) == 1


# ---------------------------------------------------------------- executing runs (detached runner: no scheduler)

ENV_BODY = """
import os, json, pathlib
from mlscale_sdk import tracking
with tracking.start_run("job-env") as run:
    run.log_metrics({"rows_seen": rows})
info = {k: os.environ.get(k) for k in ("MLSCALE_JOB_ID", "MLSCALE_JOB_RUN_ID", "MLSCALE_HOME")}
info["mlflow_run_id"] = run.run_id
pathlib.Path(os.environ["MLSCALE_RUN_DIR"], "env.json").write_text(json.dumps(info))
"""


def test_run_records_env_mlflow_and_output(project):
    J.promote(make_nb(project / "envjob.ipynb", body=ENV_BODY), parameters={"rows": 7})
    r = J.run_now("envjob", parameters={"label": "hi"}, wait=True, timeout=180)
    assert r.status == "succeeded", r.error
    assert r.attempt == 1 and r.started_at < r.ended_at and r.trigger == "manual" and r.scheduled_for is None
    assert r.parameters == {"rows": 7, "label": "hi"}
    env = json.loads((Path(r.output_path).parent / "env.json").read_text())
    assert env["MLSCALE_JOB_ID"] == "envjob" and env["MLSCALE_JOB_RUN_ID"] == r.id and env["MLSCALE_HOME"] == str(project)
    assert r.mlflow_run_id == env["mlflow_run_id"] and r.metrics.get("rows_seen") == 7.0
    from mlscale_sdk import tracking
    tags = tracking.client().get_run(r.mlflow_run_id).data.tags
    assert tags["mlscale.job_id"] == "envjob" and tags["mlscale.job_run_id"] == r.id
    out = nbformat.read(r.output_path, as_version=4)
    injected = [c for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "rows = 7" in injected[0].source and 'label = "hi"' in injected[0].source
    assert J.output_path(r.id) == Path(r.output_path)
    assert "detached runner" in (r.executor or "")
    assert "succeeded" in r._repr_html_() and json.dumps(r.to_dict())


def test_parameters_are_never_pasted_raw(project):
    J.promote(make_nb(project / "inj.ipynb"))
    evil = "x'); import os; os.system('touch PWNED'); ('"
    r = J.run_now("inj", parameters={"label": evil}, wait=True, timeout=120)
    assert r.status == "succeeded", r.error
    assert not (project / "PWNED").exists()
    assert evil in nbformat.read(r.output_path, as_version=4).cells[-1].outputs[0]["text"]


def test_failed_run_keeps_output_with_failing_cell(project):
    J.promote(make_nb(project / "fail.ipynb", cells=["a = 1", "raise ValueError(f'bad rows {rows}')", "print('never')"]))
    r = mlscale("jobs", "run", "fail", "--wait", "--timeout", "120", check=False, env={"MLSCALE_HOME": str(project)})
    assert r.returncode == 1, r.stdout + r.stderr
    run = J.history("fail")[0]
    assert run.status == "failed" and run.ended_at is not None
    assert "ValueError: bad rows 10" in run.error and "cell 3" in run.error, run.error
    out = nbformat.read(J.output_path(run.id), as_version=4)
    assert any(o.get("ename") == "ValueError" for c in out.cells if c.cell_type == "code" for o in c.get("outputs", []))
    r = mlscale("jobs", "output", run.id, env={"MLSCALE_HOME": str(project)})
    assert r.stdout.strip() == run.output_path
    assert "failed" in mlscale("jobs", "history", "fail", env={"MLSCALE_HOME": str(project)}).stdout


def test_retries_with_exponential_backoff(project):
    body = "import os\nattempt = int(os.environ['MLSCALE_JOB_ATTEMPT'])\nassert attempt >= 3, f'flaky attempt {attempt}'"
    J.promote(make_nb(project / "flaky.ipynb", body=body), retries=2, retry_delay=1.0)
    r = J.run_now("flaky", wait=True, timeout=240)
    assert r.status == "succeeded" and r.attempt == 3, (r.status, r.attempt, r.error, r.attempts)
    a1, a2 = r.attempts
    assert a1["status"] == a2["status"] == "failed" and "flaky attempt 1" in a1["error"]
    from datetime import datetime
    gap1 = datetime.fromisoformat(a2["started_at"]) - datetime.fromisoformat(a1["ended_at"])
    gap2 = r.started_at - datetime.fromisoformat(a2["ended_at"])
    assert gap1.total_seconds() >= 1.0 and gap2.total_seconds() >= 2.0, (gap1, gap2)
    assert Path(a1["output"]).exists() and Path(a2["output"]).exists()   # every attempt's output is kept


def test_retries_exhausted_ends_failed(project):
    J.promote(make_nb(project / "bad.ipynb", body="1/0"), retries=1, retry_delay=0)
    r = J.run_now("bad", wait=True, timeout=180)
    assert (r.status, r.attempt, len(r.attempts)) == ("failed", 2, 1) and "ZeroDivisionError" in r.error


TIMEOUT_BODY = """
import os, subprocess, sys, time, pathlib
d = pathlib.Path(os.environ["MLSCALE_RUN_DIR"])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
(d / "pids").write_text(f"{os.getpid()} {child.pid}")
time.sleep(600)
"""


def test_timeout_kills_kernel_and_its_children(project):
    import psutil
    # 20 s: the detached runner's cold start (papermill import, kernel start) must fit before the hang, even on a loaded CI box
    J.promote(make_nb(project / "hang.ipynb", body=TIMEOUT_BODY), timeout=20)
    r = J.run_now("hang", wait=True, timeout=120)
    assert r.status == "timed_out" and "timed out after 20s" in r.error, r.error
    kernel, child = map(int, (Path(r.output_path).parent / "pids").read_text().split())
    time.sleep(0.5)
    for pid in (kernel, child):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    assert "timed out" in nbformat.read(r.output_path, as_version=4).cells[-1].source   # output kept and annotated


# ---------------------------------------------------------------- clusters

CLUSTER_BODY = """
import os, json, pathlib
import mlscale_sdk as ms
from distributed import Client
c = ms.start_cluster("auto", register=False)   # a notebook written for a laptop: attaches to the job cluster
n = c.client.submit(lambda x: x + 1, 41).result()
info = dict(address=os.environ["MLSCALE_CLUSTER_ADDRESS"], seen=c.scheduler_address, n=n, workers=len(c.workers()))
pathlib.Path(os.environ["MLSCALE_RUN_DIR"], "cluster.json").write_text(json.dumps(info))
c.close()
"""


@pytest.mark.slow
def test_job_cluster_is_started_exported_and_torn_down(project):
    from mlscale_sdk import clusters
    J.promote(make_nb(project / "clu.ipynb", body=CLUSTER_BODY),
              cluster={"cls": "distributed.LocalCluster", "options": {"n_workers": 1, "threads_per_worker": 1, "processes": True, "dashboard_address": "127.0.0.1:0"}})
    r = J.run_now("clu", wait=True, timeout=240)
    assert r.status == "succeeded", r.error
    info = json.loads((Path(r.output_path).parent / "cluster.json").read_text())
    assert info["n"] == 42 and info["workers"] == 1 and info["seen"] == info["address"]
    assert clusters.list_clusters() == []
    assert not clusters.scheduler_alive(info["address"])
    h = J.history("clu")[0]   # the run is charged its cluster's core-hours (one thread while it lived)
    assert h.usage["core_hours"] > 0 and h.to_dict()["usage"]["cost"] == 0.0
    from mlscale_sdk.formatting import run_line
    assert "core_hours=" in run_line(h)


# ---------------------------------------------------------------- PostgreSQL store

def _pg_bin():
    import glob
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture
def postgres():
    "A real PostgreSQL server in a temp dir on a free port (run as the postgres user when we are root)."
    pgbin = _pg_bin()
    if pgbin is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; listed in .ci/system-packages.txt)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    import tempfile
    tmp_path = Path(tempfile.mkdtemp(prefix="mlscale-pg-"))   # not under pytest's root-only tmp folder
    data = tmp_path / "pgdata"
    data.mkdir()
    pre = []
    if os.geteuid() == 0:   # PostgreSQL refuses to run as root
        shutil.chown(tmp_path, "postgres"); shutil.chown(data, "postgres")
        os.chmod(tmp_path, 0o755)
        pre = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*pre, str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([*pre, str(pgbin / "postgres"), "-D", str(data), "-p", str(port), "-k", str(tmp_path), "-h", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def ready():
        import psycopg
        try:
            psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", connect_timeout=1).close()
            return True
        except Exception:
            return False
    wait_for(ready, timeout=30, what="postgres")
    yield url
    proc.terminate()
    proc.wait(30)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_postgresql_store(project, postgres, monkeypatch):
    from mlscale_sdk.config import settings
    monkeypatch.setenv("MLSCALE_STATE_DB", postgres)
    settings.cache_clear()
    assert settings().state_db.startswith("postgresql")
    J.promote(make_nb(project / "pg.ipynb"), schedule="* * * * * *", parameters={"rows": 2})
    assert not (project / ".mlscale" / "state.db").exists()
    import sqlalchemy as sa
    with sa.create_engine(postgres).connect() as c:
        assert c.execute(sa.text("select count(*) from jobs")).scalar() == 1
    # the unique slot holds on PostgreSQL too
    J.queue_run("pg", scheduled_for=1_800_000_000.0, trigger="schedule")
    with pytest.raises(J.JobValidationError, match="already has a run"):
        J.queue_run("pg", scheduled_for=1_800_000_000.0, trigger="schedule")
    # a real scheduler process on the PostgreSQL store fires slots and runs them with papermill
    env = {**os.environ, "MLSCALE_HOME": str(project), "MLSCALE_STATE_DB": postgres}
    p = subprocess.Popen([str(BIN / "mlscale"), "scheduler", "run", "--poll", "0.1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: sum(r.status == "succeeded" and r.scheduled_for is not None for r in J.history("pg")) >= 2, timeout=90, what="two slots")
        assert "running" in mlscale("scheduler", "status", env={"MLSCALE_STATE_DB": postgres, "MLSCALE_HOME": str(project)}).stdout
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    slots = [r.scheduled_for for r in J.history("pg", limit=500) if r.scheduled_for]
    assert len(slots) == len(set(slots))


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cli_wait_runs_inline_and_ctrl_c_cancels(project):
    "`mlscale jobs run --wait` with no scheduler executes from the CLI process; Ctrl-C cancels and kills the kernel tree."
    import psutil
    J.promote(make_nb(project / "hang2.ipynb", body=TIMEOUT_BODY), name="hang2")
    # the child gets SIGINT's default back: a runner started with SIGINT ignored (nohup, CI) passes that on
    p = subprocess.Popen([str(BIN / "mlscale"), "jobs", "run", "hang2", "--wait"], env={**os.environ, "MLSCALE_HOME": str(project)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    wait_for(lambda: J.history("hang2") and (Path(J.history("hang2")[0].output_path).parent / "pids").exists(), timeout=90, what="kernel up")
    run = J.history("hang2")[0]
    assert run.status == "running" and run.executor.startswith("executing it from this process")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0
    r = J.get_run(run.id)
    assert r.status == "cancelled" and "cancelled" in r.error, (r.status, r.error)
    kernel, child = map(int, (Path(r.output_path).parent / "pids").read_text().split())
    time.sleep(0.5)
    for pid in (kernel, child):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    assert "executing it from this process" in err


def test_ctrl_c_test_passes_when_the_runner_ignores_sigint(tmp_path):
    "The Ctrl-C test above, run by a pytest that starts with SIGINT ignored (as under nohup or some CI runners)."
    r = subprocess.run([sys.executable, "-m", "pytest", f"{__file__}::test_cli_wait_runs_inline_and_ctrl_c_cancels", "-q",
                        "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'inner'}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=240, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_cancel_queued_and_running(project):
    import psutil
    J.promote(make_nb(project / "c1.ipynb", body=TIMEOUT_BODY), name="c1", retries=3, retry_delay=0)
    q = J.queue_run("c1")
    assert J.cancel(q.id).status == "cancelled"
    with pytest.raises(J.JobValidationError, match="already ended"):
        J.cancel(q.id)
    r = J.run_now("c1")
    wait_for(lambda: (Path(J.get_run(r.id).output_path).parent / "pids").exists(), timeout=90, what="kernel up")
    done = J.cancel(r.id)
    assert (done.status, done.attempt) == ("cancelled", 1)
    kernel, child = map(int, (Path(done.output_path).parent / "pids").read_text().split())
    time.sleep(1.0)
    for pid in (kernel, child):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    assert J.get_run(r.id).status == "cancelled"   # not retried


def test_finish_run_calls_monitor_hook_and_swallows_its_errors(project, monkeypatch, caplog):
    "finish_run hands every ended attempt to monitor.on_run_finished (retrying=True when another follows); hook errors never fail a run."
    J.promote(make_nb(project / "h.ipynb"), name="h", retries=1, retry_delay=0)
    seen = []

    def hook(job, run):
        seen.append((job.name, run.status, run.attempt, run.retrying))
        raise RuntimeError("monitor is broken")
    monkeypatch.setattr(J.hooks, "handlers", lambda event: [("monitor", hook)] if event == "on_run_finished" else [])
    r = J.queue_run("h")
    assert J.claim_run(r.id, "test")
    first = J.finish_run(r.id, 1, "failed", "boom")
    assert (first.status, first.retrying) == ("failed", True)
    assert J.get_run(r.id).status == "queued" and J.get_run(r.id).attempt == 2   # requeued in the same transaction
    assert J.claim_run(r.id, "test")
    assert J.finish_run(r.id, 2, "succeeded").status == "succeeded"
    assert J.finish_run(r.id, 2, "failed") is None                                # an attempt is finished once
    assert seen == [("h", "failed", 1, True), ("h", "succeeded", 2, False)]
    assert "monitor.on_run_finished failed (the run is not affected)" in caplog.text
    assert J.get_run(r.id).status == "succeeded"


# ---------------------------------------------------------------- poison specs (issue 11)

POISON = [
    ("inf_retry_delay", dict(retry_delay=float("inf")), "retry_delay: Input should be a finite number"),
    ("nan_retry_delay", dict(retry_delay=float("nan")), "retry_delay: Input should be a finite number"),
    ("inf_timeout", dict(timeout=float("inf")), "timeout: Input should be a finite number"),
    ("long_retry_delay", dict(retry_delay=86_401), "retry_delay: Input should be less than or equal to 86400"),
    ("short_timeout", dict(timeout=0.5), "timeout: Input should be greater than or equal to 1"),
    ("long_timeout", dict(timeout=7 * 86400 + 1), "timeout: Input should be less than or equal to 604800"),
    ("retries", dict(retries=101), "retries: Input should be less than or equal to 100"),
    ("max_concurrent_0", dict(max_concurrent=0), "max_concurrent: Input should be greater than or equal to 1"),
    ("max_concurrent_big", dict(max_concurrent=101), "max_concurrent: Input should be less than or equal to 100"),
    ("never_fires", dict(schedule="0 0 30 2 *"), "never fires"),
    ("too_many_tags", dict(tags={f"t{i}": "x" for i in range(51)}), "tags: at most 50"),
    ("long_tag", dict(tags={"team": "x" * 65}), "tags: 'team' is longer than 64"),
    ("inf_parameter", dict(parameters={"scale": float("inf")}), "not a finite number"),
    ("huge_parameters", dict(parameters={"label": "x" * 70_000}), "parameters: larger than 64 KiB"),
    ("inf_in_rule", dict(alerts=[{"metric": "rows", "above": float("inf")}]), "not a finite number"),
]


@pytest.mark.parametrize("case, kwargs, message", POISON, ids=[b[0] for b in POISON])
def test_poison_specs_are_refused_before_anything_is_stored(project, case, kwargs, message):
    "Non-finite numbers, out-of-bounds fields, crons that never fire and oversized fields: 400-style errors, store unchanged."
    J.promote(make_nb(project / "nbs" / "good.ipynb"), name="existing", schedule="0 1 * * *")
    nb = make_nb(project / "nbs" / "nb.ipynb")
    before = store_state(project)
    with pytest.raises(J.JobValidationError) as e:
        J.promote(nb, name="newjob", **kwargs)
    assert message in str(e.value), str(e.value)
    assert store_state(project) == before
    with pytest.raises(J.JobNotFoundError):
        J.get_job("newjob")
    # the same spec as YAML (.inf / .nan are YAML floats): refused the same way
    if case.startswith(("inf_", "nan_")) and "parameter" not in case and "rule" not in case:
        k, v = next(iter(kwargs.items()))
        text = f"name: y\nnotebook: nbs/nb.ipynb\n{k}: {'.inf' if v == float('inf') else '.nan'}\n"
        with pytest.raises(J.JobValidationError, match="finite number"):
            J.JobSpec.from_yaml(text)
    assert [j.name for j in J.list_jobs()] == ["existing"]


def test_failed_store_step_leaves_no_row_and_no_snapshot(project):
    "If writing the job row fails (a real SQLite error, raised by a trigger), the new snapshot is removed again."
    import sqlalchemy as sa
    nb = make_nb(project / "nbs" / "nb.ipynb")
    J.promote(make_nb(project / "nbs" / "good.ipynb"), name="existing")
    t = J.tables()
    with t.engine.begin() as c:
        c.execute(sa.text("CREATE TRIGGER no_new_jobs BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'disk is full'); END"))
    before = store_state(project)
    with pytest.raises(sa.exc.DBAPIError, match="disk is full"):
        J.promote(nb, name="newjob")
    assert store_state(project) == before
    assert not (project / ".mlscale" / "jobs" / "newjob").exists()


def _insert_raw_job(name, spec_text, schedule_watermark=None):
    "A job row written directly into the store, as an old version or a hand edit could leave it."
    import time as _t
    t = J.tables()
    now = _t.time()
    with t.engine.begin() as c:
        c.execute(t.jobs.insert().values(name=name, spec=spec_text, version="0" * 16, paused=False, created_at=now,
                                         updated_at=now, last_slot=schedule_watermark or now))


BAD_RECORDS = {
    "garbage": "{this is not json",
    "null-delay": json.dumps({"name": "null-delay", "notebook": "nbs/good.ipynb", "retry_delay": None}),
    "never": json.dumps({"name": "never", "notebook": "nbs/good.ipynb", "schedule": "0 0 30 2 *"}),
}


def test_a_bad_record_never_breaks_listing_pause_or_delete(project):
    J.promote(make_nb(project / "nbs" / "good.ipynb"), name="good", schedule="0 1 * * *")
    for name, text in BAD_RECORDS.items():
        _insert_raw_job(name, text)
    js = {j.name: j for j in J.list_jobs()}
    assert sorted(js) == ["garbage", "good", "never", "null-delay"]
    assert js["good"].status == "ok" and js["good"].error is None and js["good"].next_run_at is not None
    for name in BAD_RECORDS:
        assert js[name].status == "invalid" and js[name].error, name
        d = js[name].to_dict()
        assert d["status"] == "invalid" and d["error"] and json.dumps(d)
    assert "not valid JSON" in js["garbage"].error or "Invalid JSON" in js["garbage"].error, js["garbage"].error
    assert "retry_delay" in js["null-delay"].error
    assert "never fires" in js["never"].error
    assert "invalid" in js["garbage"]._repr_html_()
    env = {"MLSCALE_HOME": str(project)}
    r = mlscale("jobs", "list", env=env)
    assert "good" in r.stdout and "garbage" in r.stdout and "INVALID" in r.stdout, r.stdout
    assert len(json.loads(mlscale("jobs", "list", "--json", env=env).stdout)) == 4
    with pytest.raises(J.JobValidationError, match="invalid spec"):
        J.run_now("garbage")
    assert J.pause("garbage").paused and not J.resume("garbage").paused
    t = J.tables()
    with t.engine.connect() as c:   # pausing did not overwrite what was stored
        assert c.execute(t.jobs.select().where(t.jobs.c.name == "garbage")).first().spec == BAD_RECORDS["garbage"]
    J.delete("garbage")
    mlscale("jobs", "delete", "null-delay", "--yes", env=env)
    assert sorted(j.name for j in J.list_jobs()) == ["good", "never"]
    # promoting a valid spec over a bad record repairs it
    fixed = J.promote(project / "nbs" / "good.ipynb", name="never", schedule="0 3 * * *")
    assert fixed.status == "ok" and fixed.spec.schedule == "0 3 * * *"


# ---------------------------------------------------------------- max_concurrent in the store (issue 11)

CLAIM_SCRIPT = """
import sys, time
from mlscale_sdk import jobs as J
run_id, start = sys.argv[1], float(sys.argv[2])
J.tables()
while time.time() < start:
    time.sleep(0.001)
print(J.claim_run(run_id, "racer"))
"""


def test_max_concurrent_is_enforced_by_the_store_under_races(project):
    "Threads and processes racing to claim queued runs of a max_concurrent=2 job: exactly 2 are running."
    import threading
    J.promote(make_nb(project / "race.ipynb"), name="race", max_concurrent=2)
    ids = [J.queue_run("race").id for _ in range(8)]
    barrier = threading.Barrier(4)
    won = []

    def claim(rid):
        barrier.wait()
        won.append(J.claim_run(rid, "thread"))
    threads = [threading.Thread(target=claim, args=(rid,)) for rid in ids[:4]]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(won) == [False, False, True, True]
    assert J.running_counts() == {"race": 2}
    for r in J.history("race"):
        if r.status == "running":
            J.finish_run(r.id, r.attempt, "succeeded")
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM_SCRIPT, rid, str(start)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "MLSCALE_HOME": str(project)}) for rid in ids[4:]]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert sorted(outs) == ["False", "False", "True", "True"], outs
    assert J.running_counts() == {"race": 2}


def test_max_concurrent_holds_without_a_scheduler(project):
    "4 run-nows of a max_concurrent=1 job with no scheduler: the detached runners take turns, all succeed."
    body = "import time, json, os, pathlib\nt0 = time.time(); time.sleep(1.0)\npathlib.Path(os.environ['MLSCALE_RUN_DIR'], 'span.json').write_text(json.dumps([t0, time.time()]))"
    J.promote(make_nb(project / "one.ipynb", body=body), name="one", max_concurrent=1)
    rs = [J.run_now("one") for _ in range(4)]
    assert all("detached runner" in r.executor for r in rs)
    for r in rs:
        assert J.wait_run(r.id, timeout=240).status == "succeeded"
    spans = [json.loads((Path(r.output_path).parent / "span.json").read_text()) for r in J.history("one")]
    assert max(sum(a <= t < b for a, b in spans) for t, _ in spans) == 1, spans


# ---------------------------------------------------------------- every notebook papermill runs (issue 11)

def _bare_nb(path, cells, kernelspec=True, tags=None):
    nb = nbformat.v4.new_notebook()
    if kernelspec:
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    for i, tg in (tags or {}).items():
        nb.cells[i].metadata["tags"] = tg
    nbformat.write(nb, path)
    return path


def test_notebook_without_parameters_cell_is_a_job(project):
    "No `parameters` cell: valid without parameters (and sys.exit(0) ends a run as a success); with parameters, the tag hint."
    nb = _bare_nb(project / "plain.ipynb", ["import sys\nprint('hello')", "sys.exit(0)", "raise RuntimeError('not reached')"])
    j = J.promote(nb, name="plain")
    assert j.spec.parameters == {}
    assert J.inspect_parameters(nb) == {}
    r = J.run_now("plain", wait=True, timeout=180)
    assert r.status == "succeeded", r.error
    before = store_state(project)
    with pytest.raises(J.JobValidationError, match="Property Inspector") as e:
        J.promote(nb, name="plain2", parameters={"rows": 1})
    assert "add the tag `parameters`" in str(e.value)
    with pytest.raises(J.JobValidationError, match="Property Inspector"):
        J.queue_run("plain", parameters={"rows": 1})
    assert store_state(project) == before


def test_notebooks_papermill_cannot_parameterize_are_caught_at_promote(project):
    "Parameters for a notebook without kernelspec metadata (papermill: 'No language found'); a parameters cell that does not parse."
    nolang = _bare_nb(project / "nolang.ipynb", ["rows = 1", "print(rows)"], kernelspec=False, tags={0: ["parameters"]})
    badcell = _bare_nb(project / "badcell.ipynb", ["rows = 1\nscale = (2", "print(rows)"], tags={0: ["parameters"]})
    before = store_state(project)
    with pytest.raises(J.JobValidationError, match="no kernelspec") as e:
        J.promote(nolang, parameters={"rows": 2})
    assert "language" in str(e.value)
    with pytest.raises(J.JobValidationError, match=r"parameters cell .*line 2") as e:
        J.promote(badcell)
    assert store_state(project) == before
    # without parameters, a notebook without kernelspec runs (as python3)
    assert J.promote(nolang).spec.parameters == {}
    assert J.run_now("nolang", wait=True, timeout=180).status == "succeeded"
