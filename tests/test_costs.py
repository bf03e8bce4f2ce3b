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
