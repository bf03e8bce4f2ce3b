"""Dask dashboard plots through the Jupyter server: a real jupyter_server with jupyter-server-proxy and mlscale
loaded, a real LocalCluster; the proxy reaches the dashboards of registered clusters only, and only with a token."""
import asyncio, http.server, json, threading
from urllib.parse import urlsplit
import pytest
from tornado.httpclient import AsyncHTTPClient

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytest.importorskip("jupyter_server_proxy")


@pytest.fixture
def jp_root_dir(project):
    return project


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_server_proxy": True, "mlscale_sdk": True}}}


@pytest.fixture
def other_service():
    "An unrelated HTTP service on a loopback port (what an unrestricted /proxy/<port>/ would expose)."
    srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


@pytest.fixture
def fetch(jp_fetch, jp_http_port, jp_base_url, jp_auth_header):
    "GET a path under the server's base URL with its token, parts joined as written (jp_fetch would quote `:`)."
    async def go(*parts):
        url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}{'/'.join(parts)}"
        return await AsyncHTTPClient().fetch(url, headers=jp_auth_header, raise_error=False, follow_redirects=False)
    return go


async def test_proxy_refuses_ports_that_are_not_cluster_dashboards(project, fetch, other_service):
    for path in (("proxy", str(other_service), ""), ("proxy", f"127.0.0.1:{other_service}", ""),
                 ("proxy", "absolute", str(other_service), ""), ("proxy", f"localhost:{other_service}", "x")):
        r = await fetch(*path)
        assert r.code == 403, f"{'/'.join(path)} answered {r.code}"


async def test_dashboard_proxy_of_a_registered_cluster(project, fetch, jp_base_url, jp_http_port, other_service):
    from mlscale_sdk import clusters, dashboards
    h = await asyncio.to_thread(clusters.start_cluster, "local", n_workers=1, name="dash")
    try:
        r = await fetch("mlscale", "api", "clusters")
        rec = json.loads(r.body)[0]
        port = urlsplit(rec["dashboard_link"]).port
        assert rec["dashboard_proxy"] == f"{jp_base_url}proxy/{port}/status", rec
        r = await fetch("proxy", str(port), "individual-task-stream")
        assert r.code == 200 and b"bokeh" in r.body.lower(), (r.code, r.body[:300])
        # without the token: refused (403) or sent to the login page (302), never proxied
        url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}proxy/{port}/individual-task-stream"
        r = await AsyncHTTPClient().fetch(url, raise_error=False, follow_redirects=False)
        assert r.code in (302, 403), r.code
        assert (await fetch("proxy", str(other_service), "")).code == 403   # still only the cluster's port
    finally:
        await asyncio.to_thread(h.close)
    dashboards._CACHE["at"] = -1e9
    assert (await fetch("proxy", str(port), "individual-task-stream")).code == 403   # stopped: no longer proxied


async def test_no_dashboard_proxy_without_the_proxy(project, jp_serverapp, fetch):
    "A server where jupyter-server-proxy did not load gives no proxied paths (never an unrestricted proxy)."
    from mlscale_sdk import clusters
    jp_serverapp.web_app.settings["mlscale_proxy"] = False
    h = await asyncio.to_thread(clusters.start_cluster, "local", n_workers=1, name="noproxy")
    try:
        rec = json.loads((await fetch("mlscale", "api", "clusters")).body)[0]
        assert rec["dashboard_link"] and rec["dashboard_proxy"] is None, rec
    finally:
        await asyncio.to_thread(h.close)
