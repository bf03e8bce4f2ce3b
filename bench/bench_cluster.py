"""Cluster start: mlscale `start_cluster("local")` vs a raw `distributed.LocalCluster` + `Client` with the same workers.

Each start runs in a fresh interpreter (alternating raw/SDK, median of --repeat), timed from the call to
"workers ready". A second pair of rows does the same from a script whose `__main__` imports heavy
libraries at the top (mlflow, xgboost, torch): there raw Dask re-imports them in every worker.

    python bench/bench_cluster.py [--workers 2] [--repeat 5]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, textwrap

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


def one(script, mode, n, heavy, home):
    env = {**os.environ, "BENCH_HEAVY": "1" if heavy else "0", "MLSCALE_HOME": home, "MLSCALE_LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, script, mode, str(n)], capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-heavy", action="store_true", help="skip the heavy-__main__ comparison")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        script = os.path.join(home, "child.py")
        open(script, "w").write(CHILD)
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
