"""dask-gateway profiles against a real `dask-gateway-server` (local backend, password auth, a worker limit)."""
import base64, json, os, shutil, subprocess, sys, textwrap, time, urllib.request
from pathlib import Path
import pytest

from conftest import BIN, free_port, wait_for

pytest.importorskip("dask_gateway_server")

from mlscale_sdk import clusters as C  # noqa: E402
from mlscale_sdk import gateway as G  # noqa: E402

# dask-gateway 2026.3 Gateway.__del__ closes an already stopped loop runner (distributed 2026.7): upstream noise
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

PASSWORD = "gw-test-secret-8731"
MAX_WORKERS = 2


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory):
    "A real dask-gateway-server on loopback: UnsafeLocalBackend, SimpleAuthenticator, cluster_max_workers=2."
    d = tmp_path_factory.mktemp("gateway")
    api, proxy = free_port(), free_port()
    dask_bin = shutil.which("dask", path=str(BIN)) or str(BIN / "dask")
    (d / "config.py").write_text(textwrap.dedent(f"""
        from dask_gateway_server.options import Options, Integer
        c.DaskGateway.address = "127.0.0.1:{api}"
        c.Proxy.address = "127.0.0.1:{proxy}"
        c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
        c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
        c.SimpleAuthenticator.password = {PASSWORD!r}
        c.ClusterConfig.cluster_max_workers = {MAX_WORKERS}
        c.ClusterConfig.worker_threads = 1
        c.ClusterConfig.scheduler_cmd = [{dask_bin!r}, "scheduler"]
        c.ClusterConfig.worker_cmd = [{dask_bin!r}, "worker"]
        c.LocalBackend.clusters_directory = {str(d / "clusters")!r}
        c.Backend.cluster_options = Options(
            Integer("worker_threads", default=1, min=1, max=2),
            handler=lambda o: {{"worker_threads": o.worker_threads}},
        )
    """))
    log = open(d / "server.log", "w")
    proc = subprocess.Popen([str(BIN / "dask-gateway-server"), "-f", str(d / "config.py")], cwd=d,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{proxy}"

    def up():
        try:
            return urllib.request.urlopen(f"{url}/api/health", timeout=1).status == 200
        except Exception:
            return False

    try:
        wait_for(lambda: up() or proc.poll() is not None, timeout=60, what="dask-gateway-server")
        assert proc.poll() is None, (d / "server.log").read_text()
        yield {"address": url, "dir": d}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _clusters_on(address):
    "Names of alice's running clusters, asked over the gateway's REST API."
    req = urllib.request.Request(f"{address}/api/v1/clusters/", headers={
        "Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()})
    with urllib.request.urlopen(req, timeout=5) as r:
        return sorted(json.load(r))


@pytest.fixture
def gw_env(project, gateway_server, monkeypatch):
    monkeypatch.setenv("DASK_GATEWAY_ADDRESS", gateway_server["address"])
    monkeypatch.setenv("DASK_GATEWAY_USER", "alice")
    monkeypatch.setenv("DASK_GATEWAY_PASSWORD", PASSWORD)
    yield gateway_server
    wait_for(lambda: not _clusters_on(gateway_server["address"]), timeout=30, what="no cluster left on the gateway")


def test_shipped_profile(project):
    p = C.get_profile("gateway")
    assert p.cls == "mlscale_sdk.gateway.gateway_cluster" and p.options["password_env"] == "DASK_GATEWAY_PASSWORD"
    assert "password" not in p.options


def test_profile_connects_computes_scales_registers_and_closes(gw_env):
    addr = gw_env["address"]
    h = C.start_cluster("gateway", name="gw-one", cluster_options={"worker_threads": 2}, workers=1)
    try:
        h.wait_for_workers(1, timeout=60)
        assert h.scheduler_address.startswith("gateway://127.0.0.1:")
        assert h.client.submit(lambda x: x + 1, 41).result() == 42
        assert {w["nthreads"] for w in h.workers().values()} == {2}        # the cluster option took effect
        recs = {r.name: r for r in C.list_clusters()}
        assert "gw-one" in recs and recs["gw-one"].profile == "gateway"
        assert recs["gw-one"].cls == "mlscale_sdk.gateway.gateway_cluster"
        assert PASSWORD not in json.dumps([vars(r) for r in recs.values()], default=str)
        assert len(_clusters_on(addr)) == 1
        h.scale(2)
        wait_for(lambda: len(h.workers()) == 2, timeout=60, what="two workers")
    finally:
        h.close()
    assert "gw-one" not in {r.name for r in C.list_clusters()}
    wait_for(lambda: not _clusters_on(addr), timeout=30, what="the gateway to stop the cluster")
    from mlscale_sdk import costs
    (u,) = costs.usage_history("gw-one")  # counted on the gateway's scheduler, recorded here when it closed
    assert u["profile"] == "gateway" and u["core_seconds"] > 0, u


def test_wrong_password_is_a_clear_error(gw_env, monkeypatch):
    monkeypatch.setenv("DASK_GATEWAY_PASSWORD", "not-the-password")
    with pytest.raises(G.GatewayAuthError) as e:
        C.start_cluster("gateway", name="gw-bad")
    msg = str(e.value)
    assert "refused the credentials of user 'alice'" in msg and "not-the-password" not in msg
    assert C.list_clusters() == [] and _clusters_on(gw_env["address"]) == []


def test_missing_password_names_the_variable(gw_env, monkeypatch):
    monkeypatch.delenv("DASK_GATEWAY_PASSWORD")
    with pytest.raises(G.GatewayAuthError, match="DASK_GATEWAY_PASSWORD, which is not set"):
        C.start_cluster("gateway")
    assert C.list_clusters() == []


def test_password_as_an_option_is_refused(gw_env):
    with pytest.raises(C.ClusterValidationError, match="look like credentials"):
        C.start_cluster("gateway", cluster_options={"password": "x"})
    assert C.list_clusters() == [] and _clusters_on(gw_env["address"]) == []


def test_bad_cluster_option_is_a_validation_error(gw_env):
    with pytest.raises(C.ClusterValidationError, match="refused the request"):
        C.start_cluster("gateway", cluster_options={"worker_threads": 99})
    assert C.list_clusters() == [] and _clusters_on(gw_env["address"]) == []


def test_scale_past_the_limit_is_a_clear_error(gw_env):
    h = C.start_cluster("gateway", name="gw-limit", workers=1)
    try:
        with pytest.raises(G.GatewayLimitError) as e:
            h.scale(MAX_WORKERS + 3)
        assert f"limit of {MAX_WORKERS} workers" in str(e.value) and "cluster_max_workers" in str(e.value)
        with pytest.raises(G.GatewayLimitError, match=f"limit of {MAX_WORKERS}"):
            h.adapt(minimum=0, maximum=MAX_WORKERS + 1)
    finally:
        h.close()


def test_start_past_the_limit_leaves_no_cluster(gw_env):
    with pytest.raises(G.GatewayLimitError, match=f"limit of {MAX_WORKERS} workers"):
        C.start_cluster("gateway", name="gw-toomany", workers=MAX_WORKERS + 1)
    assert "gw-toomany" not in {r.name for r in C.list_clusters()}
    wait_for(lambda: not _clusters_on(gw_env["address"]), timeout=30, what="the refused cluster to stop")


def test_unreachable_gateway_is_a_cluster_error(project, monkeypatch):
    monkeypatch.setenv("DASK_GATEWAY_ADDRESS", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DASK_GATEWAY_PASSWORD", PASSWORD)
    with pytest.raises(C.ClusterError, match="no dask-gateway server answers"):
        C.start_cluster("gateway")
    assert G.reachable("gateway")[0] is False


def test_reachable(gw_env):
    ok, why = G.reachable("gateway")
    assert ok, why


# ---------------------------------------------------------------- `mlscale cluster profiles`: INSTALLED / REACHABLE

def test_backend_status_of_the_gateway_profile(gw_env, monkeypatch):
    from conftest import mlscale
    from mlscale_sdk.slurm import backend_status
    st = backend_status("gateway")
    assert st["installed"] is True and st["reachable"] is True, st
    out = json.loads(mlscale("cluster", "profiles", "--json").stdout)
    assert out["gateway"]["reachable"] is True, out["gateway"]
    monkeypatch.setenv("DASK_GATEWAY_ADDRESS", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    t0 = time.monotonic()
    st = backend_status("gateway")
    assert st["reachable"] is False and "did not answer" in st["reason"], st
    assert time.monotonic() - t0 < 5


def test_backend_status_with_an_unset_address_is_unknown(project, monkeypatch):
    from conftest import mlscale
    from mlscale_sdk.slurm import backend_status
    (project / "clusters").mkdir()
    (project / "clusters" / "gw-site.yaml").write_text(
        "cls: mlscale_sdk.gateway.gateway_cluster\noptions:\n  address: ${MLSCALE_TEST_GATEWAY_ADDRESS}\n")
    monkeypatch.delenv("MLSCALE_TEST_GATEWAY_ADDRESS", raising=False)
    st = backend_status("gw-site")
    assert st == {"installed": True, "reachable": None, "reason": "unknown (MLSCALE_TEST_GATEWAY_ADDRESS unset)"}, st
    assert G.reachable("gw-site")[0] is None
    r = mlscale("cluster", "profiles")
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("gw-site"))
    assert line.split()[1:3] == ["yes", "unknown"], r.stdout
    assert "MLSCALE_TEST_GATEWAY_ADDRESS unset" in r.stdout
    assert json.loads(mlscale("cluster", "profiles", "--json").stdout)["gw-site"]["reachable"] is None
