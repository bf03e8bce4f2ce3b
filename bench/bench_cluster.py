"""Cluster start: mlscale `start_cluster("local")` vs a raw `distributed.LocalCluster` + `Client` with the same workers.

Each start runs in a fresh interpreter (alternating raw/SDK, median of --repeat), timed from the call to
"workers ready". A second pair of rows does the same from a script whose `__main__` imports heavy
libraries at the top (mlflow, xgboost, torch): there raw Dask re-imports them in every worker.

A third row (with dask-gateway-server installed) starts a real gateway on loopback (local backend, password
auth) and compares `start_cluster("gateway", workers=n)` + wait with a raw `Gateway(...).new_cluster()` + `scale`
+ wait.

    python bench/bench_cluster.py [--workers 2] [--repeat 5] [--no-heavy] [--no-gateway]
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

CHILD = textwrap.dedent('''
    import os, sys, time, json
    HEAVY = os.environ.get("BENCH_HEAVY") == "1"
    if HEAVY:
        import mlflow, xgboost, torch  # a typical notebook-turned-script preamble
    import distributed
    from mlscale_sdk import clusters
    if __name__ == "__main__":
        mode, n = sys.argv[1], int(sys.argv[2])
        t = time.perf_counter()
        if mode == "raw":
            c = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
            client = distributed.Client(c)   # what a user does next; start_cluster's handle comes with it
        else:
            c = clusters.start_cluster("local", n_workers=n, threads_per_worker=1)
        dt = time.perf_counter() - t
        if mode == "raw": client.close()
        c.close()
        print(json.dumps({"seconds": dt}))
''')


GATEWAY_CHILD = textwrap.dedent('''
    import os, sys, time, json
    from mlscale_sdk import clusters
    if __name__ == "__main__":
        mode, n = sys.argv[1], int(sys.argv[2])
        t = time.perf_counter()
        if mode == "raw":
            from dask_gateway import Gateway, BasicAuth
            gw = Gateway(os.environ["DASK_GATEWAY_ADDRESS"], auth=BasicAuth("bench", os.environ["DASK_GATEWAY_PASSWORD"]))
            c = gw.new_cluster()
            c.scale(n)
            client = c.get_client()
            client.wait_for_workers(n)
        else:
            c = clusters.start_cluster("gateway", workers=n)
            c.wait_for_workers(n)
        dt = time.perf_counter() - t
        if mode == "raw": client.close()
        c.close()
        print(json.dumps({"seconds": dt}))
''')
GATEWAY_PASSWORD = "bench-" + os.urandom(6).hex()


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(d):
    "A dask-gateway-server on loopback in `d` (local backend, password auth); returns (process, address)."
    api, proxy, dask_bin = _port(), _port(), shutil.which("dask", path=os.path.dirname(sys.executable))
    open(os.path.join(d, "gateway_config.py"), "w").write(textwrap.dedent(f"""
        c.DaskGateway.address = "127.0.0.1:{api}"
        c.Proxy.address = "127.0.0.1:{proxy}"
        c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
        c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
        c.SimpleAuthenticator.password = {GATEWAY_PASSWORD!r}
        c.ClusterConfig.worker_threads = 1
        c.ClusterConfig.scheduler_cmd = [{dask_bin!r}, "scheduler"]
        c.ClusterConfig.worker_cmd = [{dask_bin!r}, "worker"]
        c.LocalBackend.clusters_directory = {os.path.join(d, "gw-clusters")!r}
    """))
    exe = os.path.join(os.path.dirname(sys.executable), "dask-gateway-server")
    proc = subprocess.Popen([exe, "-f", "gateway_config.py"], cwd=d, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{proxy}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"{url}/api/health", timeout=1).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("dask-gateway-server did not start")


def bench_gateway(home, n, repeat):
    "Median start of a gateway cluster with n workers: raw dask-gateway client vs the mlscale profile."
    script = os.path.join(home, "gateway_child.py")
    open(script, "w").write(GATEWAY_CHILD)
    proc, url = start_gateway(home)
    env = {**os.environ, "DASK_GATEWAY_ADDRESS": url, "DASK_GATEWAY_USER": "bench", "DASK_GATEWAY_PASSWORD": GATEWAY_PASSWORD,
           "MLSCALE_HOME": home, "MLSCALE_LOG_LEVEL": "WARNING"}
    run = lambda mode: json.loads(subprocess.run([sys.executable, script, mode, str(n)], capture_output=True, text=True,
                                                 env=env, check=True).stdout.strip().splitlines()[-1])["seconds"]
    try:
        run("sdk")  # warm
        t = {"raw": [], "sdk": []}
        for _ in range(repeat):
            for mode in ("raw", "sdk"):
                t[mode].append(run(mode))
    finally:
        proc.terminate()
        proc.wait(20)
    raw, sdk = statistics.median(t["raw"]), statistics.median(t["sdk"])
    print(f"gateway cluster start ({n} workers): raw Gateway.new_cluster+scale+wait {raw:.2f}s, "
          f"mlscale start_cluster('gateway') {sdk:.2f}s -> SDK/raw = {sdk / raw:.2f}x  (target <= 1.1x)")


def one(script, mode, n, heavy, home):
    env = {**os.environ, "BENCH_HEAVY": "1" if heavy else "0", "MLSCALE_HOME": home, "MLSCALE_LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, script, mode, str(n)], capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-heavy", action="store_true", help="skip the heavy-__main__ comparison")
    ap.add_argument("--no-gateway", action="store_true", help="skip the dask-gateway comparison")
    ap.add_argument("--only-gateway", action="store_true", help="only the dask-gateway comparison")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        script = os.path.join(home, "child.py")
        open(script, "w").write(CHILD)
        if not a.no_gateway and shutil.which("dask-gateway-server", path=os.path.dirname(sys.executable)):
            bench_gateway(home, a.workers, a.repeat)
        if a.only_gateway:
            return
        one(script, "sdk", a.workers, False, home)  # warm the state store and OS caches once
        for heavy in ([False] if a.no_heavy else [False, True]):
            t = {"raw": [], "sdk": []}
            for _ in range(a.repeat):
                for mode in ("raw", "sdk"):
                    t[mode].append(one(script, mode, a.workers, heavy, home))
            raw, sdk = statistics.median(t["raw"]), statistics.median(t["sdk"])
            label = "heavy __main__" if heavy else "plain script "
            print(f"cluster start ({a.workers} workers, {label}): raw LocalCluster {raw:.2f}s, "
                  f"mlscale start_cluster {sdk:.2f}s -> SDK/raw = {sdk / raw:.2f}x" + ("  (target <= 1.1x)" if not heavy else ""))
    bench_slurm(a.workers, a.repeat)


def _slurm_once(mode, n):
    "Seconds from nothing to `n` Slurm-scheduled workers: raw SLURMCluster(...) or the mlscale `slurm` profile."
    import time

    from mlscale_sdk.clusters import get_profile, profile_options, start_cluster
    opts = profile_options(get_profile("slurm"))
    t0 = time.perf_counter()
    if mode == "raw":
        from dask_jobqueue import SLURMCluster
        from distributed import Client
        c = SLURMCluster(**opts)
        c.scale(n)
        cl = Client(c)
        cl.wait_for_workers(n, timeout=120)
        dt = time.perf_counter() - t0
        cl.close(); c.close()
    else:
        h = start_cluster("slurm", register=False)
        h.scale(n)
        h.wait_for_workers(n, timeout=120)
        dt = time.perf_counter() - t0
        h.close()
    return dt


def bench_slurm(n, repeat):
    "Slurm start time, mlscale profile vs raw SLURMCluster with the same options (needs a running Slurm)."
    from mlscale_sdk.slurm import SlurmUnavailableError, check_slurm
    try:
        import dask_jobqueue  # noqa: F401
        check_slurm()
    except (ImportError, SlurmUnavailableError) as e:
        print(f"slurm start: skipped ({e})")
        return
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)  # sbatch writes the jobs' slurm-N.out files into the current folder
        try:
            t = {m: [_slurm_once(m, n) for _ in range(repeat)] for m in ("raw", "sdk")}
        finally:
            os.chdir(here)
    raw, sdk = statistics.median(t["raw"]), statistics.median(t["sdk"])
    print(f"slurm start ({n} workers): raw SLURMCluster {raw:.2f}s, mlscale slurm profile {sdk:.2f}s "
          f"-> SDK/raw = {sdk / raw:.2f}x  (target <= 1.1x)")


if __name__ == "__main__":
    main()
