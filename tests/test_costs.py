"""Idle shutdown, worker caps and core-hours (issue 14), on real LocalCluster processes."""
import pytest

from conftest import wait_for


def test_max_workers_caps_start_scale_and_adapt(project):
    from mlscale_sdk import clusters as C
    with pytest.raises(C.ClusterValidationError, match="at most 1 workers"):
        C.start_cluster("local", n_workers=2, max_workers=1, register=False, set_as_default=False)
    with pytest.raises(C.ProfileError, match="max_workers must be"):
        C.start_cluster("local", n_workers=1, max_workers="two", register=False, set_as_default=False)
    with pytest.raises(C.ProfileError, match="idle_timeout must be"):
        C.start_cluster("local", n_workers=1, idle_timeout="soon", register=False, set_as_default=False)
    assert C.list_clusters() == []
    h = C.start_cluster("local", n_workers=1, max_workers=2, name="capped", set_as_default=False)
    try:
        with pytest.raises(C.ClusterValidationError, match="at most 2 workers"):
            h.scale(3)
        with pytest.raises(C.ClusterValidationError, match="at most 2 workers"):
            C.scale_cluster("capped", 3)   # through the scheduler's handler, as the CLI and server do
        with pytest.raises(C.ClusterValidationError, match="at most 2 workers"):
            C.adapt_cluster("capped", 0, 5)
        assert len(h.workers()) == 1
        C.scale_cluster("capped", 2)
        h.wait_for_workers(2, 60)
    finally:
        h.close()


def test_core_hours_are_counted_and_recorded(project):
    from mlscale_sdk import clusters as C, costs
    h = C.start_cluster("local", n_workers=2, threads_per_worker=1, name="counted", set_as_default=False)
    try:
        rec = C.list_clusters(details=True)[0]
        assert rec.core_hours > 0 and rec.gpu_hours == 0 and rec.cost == 0.0
        d = rec.to_dict()
        assert {"core_hours", "gpu_hours", "cost", "idle_timeout", "idle_left"} <= set(d)
        first = h._usage.usage()["core_seconds"]
        assert h._usage.usage()["core_seconds"] > first   # two threads alive: it grows
    finally:
        h.close()
    hist = costs.usage_history("counted")
    assert len(hist) == 1 and hist[0]["core_seconds"] >= first and hist[0]["profile"] == "local"


def test_price_gives_a_cost(project, monkeypatch):
    from mlscale_sdk import costs
    from mlscale_sdk.config import settings
    monkeypatch.setenv("MLSCALE_PRICE_PER_CORE_HOUR", "0.5")
    settings.cache_clear()
    assert costs.usage_dict(7200)["cost"] == 1.0
    monkeypatch.setenv("MLSCALE_PRICE_PER_CORE_HOUR", "free")
    settings.cache_clear()
    with pytest.raises(ValueError, match="price_per_core_hour"):
        settings()


def test_idle_cluster_shuts_down_and_leaves_the_registry(project):
    from mlscale_sdk import clusters as C, costs
    h = C.start_cluster("local", n_workers=1, idle_timeout="3s", name="idler", set_as_default=False)
    rec = C.list_clusters(details=True)[0]
    assert rec.idle_timeout == 3 and 0 <= rec.idle_left <= 3
    wait_for(lambda: C.list_clusters(prune=False) == [], timeout=60, what="the idle cluster to unregister itself")
    assert costs.usage_history("idler")[0]["core_seconds"] > 0
    h.close()


def test_detached_cluster_defaults_to_the_idle_timeout_setting(project, monkeypatch):
    from mlscale_sdk import clusters as C
    from mlscale_sdk.config import settings
    monkeypatch.setenv("MLSCALE_IDLE_TIMEOUT", "4s")
    settings.cache_clear()
    rec = C.start_detached("local", name="bg-idle", n_workers=1)
    assert rec.name == "bg-idle"
    assert C.list_clusters(details=True)[0].idle_timeout == 4
    wait_for(lambda: C.list_clusters() == [], timeout=60, what="the detached idle cluster to stop")


def test_cli_cluster_list_shows_cost_and_idle_left(project):
    from mlscale_sdk import clusters as C
    from conftest import mlscale
    h = C.start_cluster("local", n_workers=1, name="cli-cost", idle_timeout="1h", set_as_default=False)
    try:
        r = mlscale("cluster", "list", env={"MLSCALE_HOME": str(project), "MLSCALE_PRICE_PER_CORE_HOUR": "2"})
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("cli-cost")][0]
        assert "core_hours=" in line and "cost=" in line and "idle_left=" in line and "idle_left=never" not in line
    finally:
        h.close()


# ---------------------------------------------------------------- schedulers outside mlscale's process

BLOCK_MLSCALE = """
import sys
class _NoMlscale:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "mlscale_sdk":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for this test)")
sys.meta_path.insert(0, _NoMlscale())
"""


@pytest.fixture
def separate_scheduler(tmp_path):
    "`start(mlscale=True|False)`: a real `dask scheduler` + `dask worker` (2 threads) in their own folder."
    import os, subprocess
    from conftest import BIN, free_port
    from mlscale_sdk import clusters as C
    procs = []

    def start(mlscale=True):
        port = free_port()
        addr, cwd = f"tcp://127.0.0.1:{port}", tmp_path / "elsewhere"
        cwd.mkdir()
        env = {**os.environ}
        env.pop("MLSCALE_HOME", None)
        if not mlscale:
            (tmp_path / "site").mkdir()
            (tmp_path / "site" / "sitecustomize.py").write_text(BLOCK_MLSCALE)
            env["PYTHONPATH"] = str(tmp_path / "site")
        procs.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                       "--no-dashboard"], cwd=cwd, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: C.scheduler_alive(addr), what="dask scheduler")
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", addr, "--nthreads", "2", "--no-dashboard"],
                                      cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client
        with Client(addr, timeout=10) as cl:
            cl.wait_for_workers(1, timeout=60)
        return addr, cwd

    yield start
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def test_a_remote_scheduler_with_mlscale_counts_usage(project, separate_scheduler):
    import time
    from conftest import mlscale
    from mlscale_sdk import clusters as C, costs
    addr, cwd = separate_scheduler(mlscale=True)
    h = C.start_cluster("remote", name="far", address=addr)
    try:
        assert getattr(h, "usage_unknown", None) is None
        time.sleep(1)
        u = costs.usage_of(h)
        assert 1.5 <= u["core_seconds"] < 60, u      # two threads, for a second or more
        rec = C.list_clusters(details=True)[0]      # asked over the scheduler's `mlscale_usage` handler
        assert rec.name == "far" and rec.core_hours > 0 and rec.idle_left is None
        line = next(ln for ln in mlscale("cluster", "list").stdout.splitlines() if ln.startswith("far"))
        assert "core_hours=0.0" in line and "unknown" not in line, line
    finally:
        h.close()
    (hist,) = costs.usage_history("far")
    assert hist["profile"] == "remote" and hist["core_seconds"] >= u["core_seconds"]
    assert list(cwd.iterdir()) == [], "nothing is written where the scheduler runs"
    # a second attach to the same scheduler finds the counter and records only its own share
    h2 = C.start_cluster("remote", name="far-again", address=addr)
    h2.close()
    assert costs.usage_history("far-again")[0]["core_seconds"] < hist["core_seconds"]


def test_a_remote_scheduler_without_mlscale_is_unknown_not_zero(project, separate_scheduler, caplog):
    from conftest import mlscale
    from mlscale_sdk import clusters as C, costs
    addr, _ = separate_scheduler(mlscale=False)
    h = C.start_cluster("remote", name="bare", address=addr)
    try:
        assert "mlscale is not importable on the scheduler" in h.usage_unknown, h.usage_unknown
        assert "core-hours unknown" in caplog.text
        assert costs.usage_of(h) is None
        assert h.client.submit(lambda x: x + 1, 1).result() == 2  # the cluster itself works
        rec = C.list_clusters(details=True)[0]
        assert rec.workers == 1 and rec.core_hours is None
        line = next(ln for ln in mlscale("cluster", "list").stdout.splitlines() if ln.startswith("bare"))
        assert "core_hours=unknown" in line, line
    finally:
        h.close()
    assert costs.usage_history("bare") == [], "unknown is not recorded as zero"
