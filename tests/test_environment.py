"""The same environment everywhere: version checks on attach against real `dask worker` processes, run records, locks."""
import os, subprocess, sys, warnings
from pathlib import Path

import pytest

from conftest import BIN, free_port, wait_for
from mlscale_sdk import clusters as C
from mlscale_sdk.config import settings
from mlscale_sdk.environment import PACKAGES, environment, mismatch_message, mismatches

FAKE = "0.0.1.fake"
SITECUSTOMIZE = f"""
import importlib.metadata as m
_real = m.version
def version(name):
    return {FAKE!r} if name.lower() == "mlflow" else _real(name)
m.version = version
"""


def _worker(addr, name, env=None):
    return subprocess.Popen([str(BIN / "dask"), "worker", addr, "--nthreads", "1", "--name", name, "--no-dashboard"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


@pytest.fixture
def scheduler(tmp_path):
    "A real `dask scheduler` with one worker like the client; `add(fake=True)` adds a worker with another mlflow."
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    wait_for(lambda: C.scheduler_alive(addr), what="dask scheduler")
    procs.append(_worker(addr, "same"))
    site = tmp_path / "fake-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)

    def add_fake():
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
        procs.append(_worker(addr, "other", env))
        return procs[-1]

    yield addr, add_fake
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def _n_workers(addr, n):
    from distributed import Client
    with Client(addr, timeout=10) as cl:
        cl.wait_for_workers(n, timeout=60)


def test_environment_reads_metadata_without_importing():
    code = "import sys; from mlscale_sdk.environment import environment; e = environment(); " \
           "print(sorted(e) == sorted(%r), 'torch' in sys.modules, 'mlflow' in sys.modules)" % (PACKAGES,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False", "False"]


def test_matching_environment_says_nothing(project, scheduler, monkeypatch):
    addr, _ = scheduler
    _n_workers(addr, 1)
    monkeypatch.setenv("MLSCALE_VERSION_CHECK", "error")
    settings.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with C.start_cluster("remote", name="same", address=addr) as c:
            assert len(c.workers()) == 1


def test_a_worker_with_another_version_is_named_in_one_warning(project, scheduler):
    addr, add_fake = scheduler
    add_fake()
    _n_workers(addr, 2)
    with pytest.warns(UserWarning) as rec:
        with C.start_cluster("remote", name="mixed", address=addr) as c:
            other = next(a for a, w in c.workers().items() if w["name"] == "other")
            same = next(a for a, w in c.workers().items() if w["name"] == "same")
    msgs = [str(w.message) for w in rec if "package versions differ" in str(w.message)]
    assert len(msgs) == 1, msgs
    mine = environment()["mlflow"]
    assert f"mlflow: {mine} on client, scheduler, worker {same}; {FAKE} on worker {other}" in msgs[0], msgs[0]
    assert "numpy" not in msgs[0] and "dask:" not in msgs[0]


def test_error_mode_refuses_to_attach_and_off_is_silent(project, scheduler, monkeypatch, caplog):
    addr, add_fake = scheduler
    add_fake()
    _n_workers(addr, 2)
    monkeypatch.setenv("MLSCALE_VERSION_CHECK", "error")
    settings.cache_clear()
    with pytest.raises(C.VersionMismatchError, match=rf"mlflow: .* {FAKE} on worker tcp://127\.0\.0\.1:\d+") as e:
        C.start_cluster("remote", name="strict", address=addr)
    assert isinstance(e.value, C.ClusterError)
    assert C.list_clusters() == [], "a refused attach leaves no registry entry"
    assert C.scheduler_alive(addr), "refusing must not stop somebody else's scheduler"
    from mlscale_sdk.costs import usage_history
    # the usage counter is attached while the versions are compared; a refused attach lets it go quietly
    assert usage_history("strict") == [] and "usage could not be read" not in caplog.text, caplog.text
    monkeypatch.setenv("MLSCALE_VERSION_CHECK", "off")
    settings.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with C.start_cluster("remote", name="lax", address=addr):
            pass


def _events(client, n=1, timeout=60):
    from mlscale_sdk.environment import VERSION_TOPIC
    wait_for(lambda: len(client.get_events(VERSION_TOPIC)) >= n, timeout=timeout, what="the joined worker's check")
    return [e for _, e in client.get_events(VERSION_TOPIC)]


def test_a_worker_joining_after_attach_is_checked_and_warned(project, scheduler, caplog):
    addr, add_fake = scheduler
    _n_workers(addr, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with C.start_cluster("remote", name="later", address=addr) as c:
            assert not [w for w in caught if "package versions differ" in str(w.message)], "all agree on attach"
            fake = add_fake()
            c.client.wait_for_workers(2, timeout=60)
            (ev,) = _events(c.client)
            other = next(a for a, w in c.workers().items() if w["name"] == "other")
            assert len(c.workers()) == 2 and fake.poll() is None, "warn mode keeps the worker"
    mine = environment()["mlflow"]
    assert ev["cluster"] == "later" and ev["worker"] == other and ev["mode"] == "warn"
    assert f"mlflow: {mine} on client; {FAKE} on worker {other}" in ev["message"], ev["message"]
    msgs = [str(w.message) for w in caught if "which joined after attach" in str(w.message)]
    assert msgs == [ev["message"]], msgs
    assert ev["message"] in caplog.text
    assert "numpy" not in ev["message"]


def test_error_mode_closes_a_worker_that_joins_after_attach(project, scheduler, monkeypatch):
    addr, add_fake = scheduler
    _n_workers(addr, 1)
    monkeypatch.setenv("MLSCALE_VERSION_CHECK", "error")
    settings.cache_clear()
    with C.start_cluster("remote", name="strict-later", address=addr) as c:
        fake = add_fake()
        (ev,) = _events(c.client)
        assert ev["mode"] == "error" and f"{FAKE} on worker" in ev["message"]
        assert "was closed (version_check = error)" in ev["message"]
        fake.wait(timeout=60)  # the worker and its nanny shut down: the process is gone, it does not come back
        wait_for(lambda: len(c.workers()) == 1, timeout=30, what="the refused worker to leave")
        assert {w["name"] for w in c.workers().values()} == {"same"}
        assert c.client.submit(lambda x: x * 2, 21).result() == 42
    assert C.scheduler_alive(addr), "closing a worker must not stop somebody else's scheduler"


def test_bad_version_check_setting_is_a_clear_error(project, monkeypatch):
    from mlscale_sdk.config import load_settings
    monkeypatch.setenv("MLSCALE_VERSION_CHECK", "loud")
    with pytest.raises(ValueError, match="version_check: expected one of warn, error, off, got 'loud'"):
        load_settings()


def test_mismatches_reads_dask_get_versions_shape():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as lc, Client(lc) as cl:
        v = cl.get_versions(check=False, packages=["mlflow", "xgboost"])
    assert mismatches(v) == {}
    w = next(iter(v["workers"]))
    v["workers"][w]["packages"]["xgboost"] = "0.1"
    msg = mismatch_message(mismatches(v))
    assert f"xgboost: {environment()['xgboost']} on client, scheduler; 0.1 on worker {w}" in msg


# ---------------------------------------------------------------- job runs record their environment

def test_a_run_records_its_environment_and_history_names_a_different_promote(project, tmp_path):
    import json
    from conftest import mlscale
    from test_jobs import ENV_BODY, make_nb
    from mlscale_sdk import jobs as J, tracking

    nb = make_nb(project / "envjob.ipynb", body=ENV_BODY)
    site = tmp_path / "fake-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    # promoted from an environment with another mlflow (a real process whose metadata says so)
    mlscale("jobs", "promote", str(nb), "--name", "envjob",
            env={"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])})
    job = J.get_job("envjob")
    promoted = json.loads((project / ".mlscale" / "jobs" / "envjob" / f"{job.version}.environment.json").read_text())
    assert promoted["mlflow"] == FAKE and promoted["dask"] == environment()["dask"]

    r = J.run_now("envjob", wait=True, timeout=180)
    assert r.status == "succeeded", r.error
    ran = json.loads((project / ".mlscale" / "runs" / r.id / "environment.json").read_text())
    assert ran == environment()
    arts = [a.path for a in tracking.client().list_artifacts(r.mlflow_run_id)]
    assert "environment.json" in arts, arts
    [h] = J.history("envjob")
    assert h.environment == ran
    assert h.environment_note == f"environment differs from promoted: mlflow {FAKE} -> {ran['mlflow']}"
    out = mlscale("jobs", "history", "envjob").stdout
    assert f"mlflow {FAKE} -> {ran['mlflow']}" in out, out

    J.promote(make_nb(project / "envjob2.ipynb", body="print(rows)"), name="envjob2")
    r2 = J.run_now("envjob2", wait=True, timeout=180)
    assert r2.status == "succeeded" and r2.environment == environment() and r2.environment_note == ""
    assert "differs" not in mlscale("jobs", "history", "envjob2").stdout


# ---------------------------------------------------------------- export captures the environment

def _lock_names(text):
    return {ln.split("==")[0].lower() for ln in text.splitlines() if ln and not ln.startswith(("#", "-"))}


def test_k8s_export_writes_lock_and_dockerfile_and_names_the_image(project, tmp_path):
    import yaml
    from conftest import mlscale
    from test_export import _promote_nightly
    from mlscale_sdk import jobs as J
    from mlscale_sdk.jobs.exporters import default_image, lock_digest

    _promote_nightly(project)
    out = tmp_path / "deploy" / "job.yaml"
    out.parent.mkdir()
    r = mlscale("jobs", "export", "Nightly_Retrain", "--to", "k8s", "-o", str(out), env={"MLSCALE_HOME": str(project)})
    lock = (out.parent / "requirements.lock").read_text()
    docker = (out.parent / "Dockerfile").read_text()
    assert "requirements.lock" in r.stdout and "Dockerfile" in r.stdout
    from importlib import metadata
    for p in ("dask", "distributed", "numpy", "pandas", "cloudpickle"):
        assert f"{metadata.version(p)}" in lock and p in _lock_names(lock), p
    assert "mlscale-sdk" not in _lock_names(lock) and "# not locked, a local checkout" in lock
    assert f"FROM python:{environment()['python']}-slim" in docker and "-r /tmp/requirements.lock" in docker
    doc = yaml.safe_load(out.read_text())
    image = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == default_image(lock) == f"{project.name.lower().replace('_', '-')}:env-{lock_digest(lock)}"
    assert J.validate_cronjob(doc) == []
    mlscale("jobs", "export", "Nightly_Retrain", "--to", "k8s", "--image", "reg.example/team/x:1", "-o", str(out),
            env={"MLSCALE_HOME": str(project)})
    assert "image: reg.example/team/x:1" in out.read_text()


def test_airflow_export_pins_the_same_lock(project, tmp_path):
    from conftest import mlscale
    from test_export import _promote_nightly

    _promote_nightly(project)
    out = tmp_path / "dags" / "nightly.py"
    out.parent.mkdir()
    mlscale("jobs", "export", "Nightly_Retrain", "--to", "airflow", "-o", str(out), env={"MLSCALE_HOME": str(project)})
    assert "requirements.lock" in out.read_text() and "PythonVirtualenvOperator" in out.read_text()
    assert (out.parent / "requirements.lock").exists() and not (out.parent / "Dockerfile").exists()
    compile(out.read_text(), str(out), "exec")


@pytest.mark.slow
def test_the_lock_installs_from_the_registry(tmp_path):
    "The whole lock resolves against the configured package index (pip's dry run, no dependencies)."
    from mlscale_sdk.environment import requirements_lock
    (lock := tmp_path / "requirements.lock").write_text(requirements_lock())
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                        "-r", str(lock)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Would install" in r.stdout


def test_a_watched_client_survives_replicate(project):
    # Dask logs `replicate` on the scheduler's `all` topic with objects it cannot send: a client subscribed to that
    # topic lost its scheduler (FuturesCancelledError: scheduler-connection-lost); the watch must not subscribe to it
    with C.start_cluster("local", name="rep", n_workers=2, threads_per_worker=1) as c:
        fut = c.client.scatter(list(range(10)))
        c.client.replicate([fut], n=2)
        assert c.client.submit(sum, fut).result(timeout=30) == 45
        assert c.client.status == "running"
