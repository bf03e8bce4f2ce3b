"""Cluster start: mlscale `start_cluster("local")` vs a raw `distributed.LocalCluster` + `Client` with the same workers.

Each start runs in a fresh interpreter (alternating raw/SDK, median of --repeat), timed from the call to
"workers ready". A second pair of rows does the same from a script whose `__main__` imports heavy
libraries at the top (mlflow, xgboost, torch): there raw Dask re-imports them in every worker.

A third row (with dask-gateway-server installed) starts a real gateway on loopback (local backend, password
auth) and compares `start_cluster("gateway", workers=n)` + wait with a raw `Gateway(...).new_cluster()` + `scale`
+ wait. A fourth (with dask-jobqueue and a Slurm: the one that answers `sinfo`, else a single-node Slurm this
script starts when it runs as root with slurm-wlm and munge installed) compares `start_cluster("slurm")` + scale +
wait with a raw `dask_jobqueue.SLURMCluster(**the profile's options)` + scale + `Client` + wait.

    python bench/bench_cluster.py [--workers 2] [--repeat 5] [--no-heavy] [--no-gateway] [--no-slurm]
                                  [--only local|gateway|slurm]
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
    import json
    import os
    import sys
    import time
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
        if mode == "raw":
            client.close()
        c.close()
        print(json.dumps({"seconds": dt}))
''')


GATEWAY_CHILD = textwrap.dedent('''
    import json
    import os
    import sys
    import time
    from mlscale_sdk import clusters
    if __name__ == "__main__":
        mode, n = sys.argv[1], int(sys.argv[2])
        t = time.perf_counter()
        if mode == "raw":
            from dask_gateway import Gateway, BasicAuth
            auth = BasicAuth("bench", os.environ["DASK_GATEWAY_PASSWORD"])
            gw = Gateway(os.environ["DASK_GATEWAY_ADDRESS"], auth=auth)
            c = gw.new_cluster()
            c.scale(n)
            client = c.get_client()
            client.wait_for_workers(n)
        else:
            c = clusters.start_cluster("gateway", workers=n)
            c.wait_for_workers(n)
        dt = time.perf_counter() - t
        if mode == "raw":
            client.close()
        c.close()
        print(json.dumps({"seconds": dt}))
''')
GATEWAY_PASSWORD = "bench-" + os.urandom(6).hex()


def alternate(run, repeat: int) -> dict:
    "One warm-up start, then `repeat` raw/sdk pairs, alternating: `{raw: [s...], sdk: [s...]}`."
    run("sdk")
    t = {"raw": [], "sdk": []}
    for _ in range(repeat):
        for mode in ("raw", "sdk"):
            t[mode].append(run(mode))
    return t


def spread(t):
    "The single starts behind a row's medians, so that a shared machine's noise shows next to the ratio."
    return "    runs: " + "; ".join(f"{m} " + " ".join(f"{x:.2f}" for x in t[m]) + "s" for m in ("raw", "sdk"))


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
    env = {**os.environ, "DASK_GATEWAY_ADDRESS": url, "DASK_GATEWAY_USER": "bench",
           "DASK_GATEWAY_PASSWORD": GATEWAY_PASSWORD, "MLSCALE_HOME": home, "MLSCALE_LOG_LEVEL": "WARNING"}
    run = lambda mode: json.loads(subprocess.run([sys.executable, script, mode, str(n)], capture_output=True, text=True,
                                                 env=env, check=True).stdout.strip().splitlines()[-1])["seconds"]
    try:
        t = alternate(run, repeat)
    finally:
        proc.terminate()
        proc.wait(20)
    raw, sdk = statistics.median(t["raw"]), statistics.median(t["sdk"])
    print(f"gateway cluster start ({n} workers): raw Gateway.new_cluster+scale+wait {raw:.2f}s, "
          f"mlscale start_cluster('gateway') {sdk:.2f}s -> SDK/raw = {sdk / raw:.2f}x  (target <= 1.1x)")
    print(spread(t))


def one(script, mode, n, heavy, home):
    env = {**os.environ, "BENCH_HEAVY": "1" if heavy else "0", "MLSCALE_HOME": home, "MLSCALE_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, script, mode, str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def bench_local(home, n, repeat, heavy_too):
    "Median start of a LocalCluster with n workers: raw LocalCluster + Client vs `start_cluster('local')`."
    script = os.path.join(home, "child.py")
    open(script, "w").write(CHILD)
    one(script, "sdk", n, False, home)  # warm the state store and OS caches once
    for heavy in [False, True] if heavy_too else [False]:
        t = {"raw": [], "sdk": []}
        for _ in range(repeat):
            for mode in ("raw", "sdk"):
                t[mode].append(one(script, mode, n, heavy, home))
        raw, sdk = statistics.median(t["raw"]), statistics.median(t["sdk"])
        label = "heavy __main__" if heavy else "plain script "
        target = "" if heavy else "  (target <= 1.1x)"
        print(f"cluster start ({n} workers, {label}): raw LocalCluster {raw:.2f}s, "
              f"mlscale start_cluster {sdk:.2f}s -> SDK/raw = {sdk / raw:.2f}x{target}")
        print(spread(t))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-heavy", action="store_true", help="skip the heavy-__main__ comparison")
    ap.add_argument("--no-gateway", action="store_true", help="skip the dask-gateway comparison")
    ap.add_argument("--no-slurm", action="store_true", help="skip the Slurm comparison")
    ap.add_argument("--only", choices=("local", "gateway", "slurm"), help="only this backend's comparison")
    ap.add_argument("--only-gateway", action="store_true", help="same as --only gateway")
    a = ap.parse_args()
    only = "gateway" if a.only_gateway else a.only
    with tempfile.TemporaryDirectory() as home:
        has_gateway = shutil.which("dask-gateway-server", path=os.path.dirname(sys.executable))
        if only in (None, "gateway") and not a.no_gateway and has_gateway:
            bench_gateway(home, a.workers, a.repeat)
        if only in (None, "local"):
            bench_local(home, a.workers, a.repeat, not a.no_heavy)
        if only in (None, "slurm") and not a.no_slurm:
            bench_slurm(home, a.workers, a.repeat)


SLURM_CHILD = textwrap.dedent('''
    import json
    import sys
    import time

    from mlscale_sdk.clusters import get_profile, profile_options, start_cluster

    if __name__ == "__main__":
        mode, n = sys.argv[1], int(sys.argv[2])
        opts = profile_options(get_profile("slurm"))  # the same options for both (read before the clock starts)
        t0 = time.perf_counter()
        if mode == "raw":
            from dask_jobqueue import SLURMCluster
            from distributed import Client

            c = SLURMCluster(**opts)
            c.scale(n)
            cl = Client(c)
            cl.wait_for_workers(n, timeout=120)
            dt = time.perf_counter() - t0
            cl.close()
            c.close()
        else:
            h = start_cluster("slurm")
            h.scale(n)
            h.wait_for_workers(n, timeout=120)
            dt = time.perf_counter() - t0
            h.close()
        print(json.dumps({"seconds": dt}))
''')
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel")


def _slurm_conf(d):
    "A single-node slurm.conf in `d` (free ports, this host, root runs the jobs), as tests/test_slurm.py writes it."
    host = socket.gethostname().split(".")[0]
    for sub in ("state", "spool", "log"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    conf = os.path.join(d, "slurm.conf")
    lines = [
        "ClusterName=mlscale-bench", f"SlurmctldHost={host}", f"SlurmctldPort={_port()}", f"SlurmdPort={_port()}",
        "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge", "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none", "SelectType=select/cons_tres",
        "ReturnToService=2", f"StateSaveLocation={d}/state", f"SlurmdSpoolDir={d}/spool",
        f"SlurmctldPidFile={d}/slurmctld.pid", f"SlurmdPidFile={d}/slurmd.pid",
        f"SlurmctldLogFile={d}/log/slurmctld.log", f"SlurmdLogFile={d}/log/slurmd.log", "MpiDefault=none",
        f"NodeName={host} CPUs={os.cpu_count()} RealMemory=8000 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
    ]
    open(conf, "w").write("\n".join(lines) + "\n")
    return conf


def _which(b):
    return shutil.which(b) or (os.path.join("/usr/sbin", b) if os.path.exists(os.path.join("/usr/sbin", b)) else None)


def start_slurm(d):
    "A single-node Slurm (munged if not running, slurmctld, slurmd) for this run; returns (processes, env) or a reason."
    if os.geteuid() != 0:
        return None, "a single-node Slurm needs root (slurmd runs the jobs as root here)"
    missing = [b for b in SLURM_BINARIES if not _which(b)]
    if missing:
        return None, f"Slurm binaries missing: {', '.join(missing)} (apt-get install slurm-wlm munge)"
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        for m in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
            os.makedirs(m, exist_ok=True)
            shutil.chown(m, "munge", "munge")
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", _which("munged")], check=True, timeout=30)
    conf = _slurm_conf(d)
    env = {**os.environ, "SLURM_CONF": conf}
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    procs = [subprocess.Popen([_which("slurmctld"), "-D", "-f", conf], **quiet)]
    time.sleep(1)
    procs.append(subprocess.Popen([_which("slurmd"), "-D", "-f", conf], **quiet))
    for _ in range(120):
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env).stdout
        if "idle" in out:
            return (procs, env), ""
        time.sleep(0.5)
    stop_slurm(procs, env)
    return None, "the single-node Slurm did not come up within 60s"


def stop_slurm(procs, env):
    "Cancel this Slurm's jobs and stop its daemons (munged is left running)."
    subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, timeout=30, env=env)
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def bench_slurm(home, n, repeat):
    "Slurm start time, the mlscale `slurm` profile vs raw SLURMCluster with the same options, each in a fresh process."
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError as e:
        print(f"slurm start: skipped ({e})")
        return
    from mlscale_sdk.slurm import SlurmUnavailableError, check_slurm

    procs, env = None, {**os.environ}
    try:
        check_slurm()  # a Slurm that already runs here (SLURM_CONF or the system's)
    except SlurmUnavailableError:
        started, why = start_slurm(home)
        if started is None:
            print(f"slurm start: skipped ({why})")
            return
        procs, env = started
    env |= {"MLSCALE_HOME": home, "MLSCALE_LOG_LEVEL": "WARNING"}
    script, jobs = os.path.join(home, "slurm_child.py"), os.path.join(home, "slurm-jobs")
    open(script, "w").write(SLURM_CHILD)
    os.makedirs(jobs, exist_ok=True)  # sbatch writes the jobs' slurm-N.out files into the current folder

    def run(mode):
        out = subprocess.run([sys.executable, script, mode, str(n)], capture_output=True, text=True, env=env,
                             cwd=jobs, check=True, timeout=300).stdout
        return json.loads(out.strip().splitlines()[-1])["seconds"]

    try:
        t = alternate(run, repeat)
    finally:
        if procs is not None:
            stop_slurm(procs, env)
    raw, sdk = statistics.median(t["raw"]), statistics.median(t["sdk"])
    print(f"slurm start ({n} workers): raw SLURMCluster+scale+wait {raw:.2f}s, mlscale start_cluster('slurm') "
          f"{sdk:.2f}s -> SDK/raw = {sdk / raw:.2f}x  (target <= 1.1x)")
    print(spread(t))


if __name__ == "__main__":
    main()
