"""Feature pipeline figures: Dask vs pandas throughput, peak RSS out of core, online lookup latency, materialize rows/s.

Run: .venv/bin/python bench/bench_features.py [--rows 4000000] [--pandas-rows 1000000] [--ooc-rows 17000000] [--limit-mb 512]
"""
import argparse, os, shutil, subprocess, sys, tempfile, time, threading
from pathlib import Path


def pct(xs, q):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(q / 100 * len(xs)))]


def rss_tree(pid):
    import psutil
    try:
        p = psutil.Process(pid); return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)])
    except psutil.Error: return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--pandas-rows", type=int, default=1_000_000)
    ap.add_argument("--ooc-rows", type=int, default=17_000_000)   # ~2.5 GiB of features: 5x the limit
    ap.add_argument("--limit-mb", type=int, default=512)
    a = ap.parse_args()
    import dask, pandas as pd
    from distributed import Client, LocalCluster
    from mlscale_sdk import data, features as F
    tmp = Path(tempfile.mkdtemp(prefix="bench-features-"))
    os.environ["MLSCALE_HOME"] = str(tmp); from mlscale_sdk.config import settings; settings.cache_clear()
    try:
        # 1. pandas, single process, the same aggregation (window_aggregates on the whole frame)
        pdf = data.make_transactions(a.pandas_rows, seed=0).compute()
        t = time.perf_counter(); F.window_aggregates(pdf); tp = time.perf_counter() - t
        print(f"pandas single process: {a.pandas_rows:,} rows in {tp:.2f}s = {a.pandas_rows/tp:,.0f} rows/s")
        del pdf
        # 2. Dask, 2 workers: generate + shuffle + windows + join + validate + write
        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as c, Client(c) as cl:
            txp = data.write_transactions(tmp / "tx", n_rows=a.rows, client=cl, seed=0)
            t = time.perf_counter(); fp = F.compute_features(txp, client=cl); td = time.perf_counter() - t
        print(f"dask (2 workers x 1 thread): {a.rows:,} rows in {td:.2f}s = {a.rows/td:,.0f} rows/s "
              f"(end to end: read, shuffle, windows, join, validate, write); ratio dask/pandas rows/s = {(a.rows/td)/(a.pandas_rows/tp):.2f}")
        # 3. out of core: one worker with a small memory limit, peak RSS of the worker processes
        limit = a.limit_mb * 2**20
        cfg = {"distributed.worker.memory.target": 0.6, "distributed.worker.memory.spill": 0.7,
               "distributed.worker.memory.pause": 0.95, "distributed.worker.memory.terminate": 0.99}
        tx = data.make_transactions(a.ooc_rows, npartitions=max(2, a.ooc_rows // 50_000), seed=1)
        one = F._partition_features(tx.partitions[0].compute(), data.make_customers(a.ooc_rows // 50, seed=1)[["customer_id", "typical_spend"]])
        size = one.memory_usage(deep=True).sum() / len(one) * a.ooc_rows   # per row x rows (partitions differ in size: traffic follows the hour)
        with dask.config.set(cfg), LocalCluster(n_workers=1, threads_per_worker=1, memory_limit=limit, dashboard_address=None,
                                                local_directory=str(tmp / "spill")) as c, Client(c) as cl:
            pids = list(cl.run(os.getpid).values()); peak = [0]; stop = [False]
            def watch():
                while not stop[0]: peak[0] = max(peak[0], sum(rss_tree(p) for p in pids)); time.sleep(0.2)
            th = threading.Thread(target=watch, daemon=True); th.start()
            t = time.perf_counter(); F.compute_features(tx, data.make_customers(a.ooc_rows // 50, seed=1), path=tmp / "ooc", client=cl)
            to = time.perf_counter() - t; stop[0] = True; th.join()
        print(f"out of core: feature data {size/2**20:,.0f} MiB = {size/limit:.1f}x the worker memory limit ({a.limit_mb} MiB); "
              f"completed in {to:.1f}s, worker peak RSS {peak[0]/2**20:,.0f} MiB")
        # 4. materialize (SQLite) + online lookups
        F.apply(fp)
        r = F.materialize()
        print(f"materialize (sqlite): {r['rows']:,} rows -> {r['entities']:,} customers in {r['seconds']:.2f}s = {r['rows']/r['seconds']:,.0f} rows/s")
        ids = list(range(1, r["entities"] + 1))
        def lat(repo, label):
            import random
            random.seed(0)
            F.online([{"customer_id": 1}], repo=repo)
            for n in (1, 100):
                xs = []
                for _ in range(300 if n == 1 else 100):
                    rows = [{"customer_id": i} for i in random.sample(ids, n)]
                    t = time.perf_counter(); F.online(rows, repo=repo); xs.append((time.perf_counter() - t) * 1000)
                print(f"online {label} {n:>3} entit{'y' if n == 1 else 'ies'}: p50 {pct(xs, 50):.2f} ms, p99 {pct(xs, 99):.2f} ms ({len(STORE)} features)")
        STORE = F.STORE_FEATURES
        lat(None, "sqlite")
        server = shutil.which("redis-server")
        if server:
            import socket
            with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
            proc = subprocess.Popen([server, "--port", str(port), "--save", "", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
            try:
                time.sleep(1)
                rp = F.init_repo(online=f"redis://127.0.0.1:{port}", path=tmp / "redis_repo")
                F.apply(fp, repo=rp); r = F.materialize(repo=rp)
                print(f"materialize (redis): {r['rows']:,} rows -> {r['entities']:,} customers in {r['seconds']:.2f}s = {r['rows']/r['seconds']:,.0f} rows/s")
                lat(rp, "redis ")
            finally: proc.terminate(); proc.wait()
        else: print("redis-server not installed: Redis figures skipped")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
