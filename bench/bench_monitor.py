"""Monitoring figures: drift on Dask vs scipy/numpy in memory, and the cost of a /metrics scrape.

    python bench/bench_monitor.py                 # 5M rows per side, 2 numeric columns; 200 jobs x 10 metrics x 50 runs
    python bench/bench_monitor.py --rows 1000000  # quicker

Drift: `monitor.drift` (two Dask passes: approximate quantiles, then per-partition histograms) on a
2-worker LocalCluster, against `scipy.stats.ks_2samp` plus a numpy PSI on the same data already in
memory (the usual notebook approach, which needs all of it in one process). Printed: both times,
their ratio, and how far our KS statistic is from scipy's (the approximation stated in the module).
Scrape: time to build the /metrics text from a store with the given number of rows, and its size.
Data generation and cluster start are not timed.
"""
import argparse
import os
import sys
import tempfile
import time


def _gen(i, shift=0.0, rows=500_000):
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng([i, int(shift * 1000)])
    return pd.DataFrame({"x": rng.normal(shift, 1, rows), "y": rng.exponential(1.0, rows)})


def bench_drift(rows: int, parts: int = 10) -> dict:
    import dask.dataframe as dd
    import numpy as np
    from distributed import Client, LocalCluster
    from scipy import stats

    from mlscale_sdk import monitor
    per = rows // parts
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as lc, Client(lc) as c:
        meta = _gen(0, rows=0)
        ref = dd.from_map(_gen, range(parts), [0.0] * parts, [per] * parts, meta=meta).persist()
        cur = dd.from_map(_gen, range(parts), [0.2] * parts, [per] * parts, meta=meta).persist()
        c.wait_for_workers(2)
        from distributed import wait
        wait([ref, cur])
        t0 = time.perf_counter()
        r = monitor.drift(ref, cur, client=c)
        ours = time.perf_counter() - t0
        a, b = ref.compute(), cur.compute()
    t0 = time.perf_counter()
    ks = {col: stats.ks_2samp(a[col].to_numpy(), b[col].to_numpy()).statistic for col in ("x", "y")}
    for col in ("x", "y"):
        edges = np.quantile(a[col].to_numpy(), np.linspace(0, 1, 11))[1:-1]
        monitor.psi(np.bincount(np.searchsorted(edges, a[col].to_numpy()), minlength=10),
                    np.bincount(np.searchsorted(edges, b[col].to_numpy()), minlength=10))
    scipy_s = time.perf_counter() - t0
    err = max(abs(r[col]["ks"] - ks[col]) for col in ("x", "y"))
    return dict(rows=per * parts, ours_s=ours, scipy_s=scipy_s, ratio=ours / scipy_s, ks_err=err, psi_x=r["x"]["psi"])


def bench_scrape(jobs: int, metrics: int, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        os.environ["MLSCALE_HOME"] = home
        from mlscale_sdk.config import settings
        settings.cache_clear()
        from mlscale_sdk import monitor
        eng, T = monitor._tables()
        now = time.time()
        with eng.begin() as c:
            for j in range(jobs):
                c.execute(
                    T.metrics.insert(),
                    [
                        dict(
                            job=f"job-{j}",
                            run_id=f"r-{j}-{r}",
                            name=f"m{m}",
                            labels="{}",
                            value=r * 0.01,
                            step=0,
                            ts=now,
                        )
                        for r in range(runs)
                        for m in range(metrics)
                    ],
                )
                c.execute(
                    T.reports.insert(),
                    [
                        dict(
                            job=f"job-{j}",
                            run_id=f"r-{j}-{r}",
                            attempt=1,
                            status="succeeded",
                            started_at=now,
                            ended_at=now + 5,
                            duration=5.0,
                            reported_at=now,
                        )
                        for r in range(runs)
                    ],
                )
        monitor.metrics_text()                      # warm: imports, table metadata
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            text = monitor.metrics_text()
            times.append(time.perf_counter() - t0)
        settings.cache_clear()
        return dict(rows=jobs * metrics * runs, scrape_s=sorted(times)[2], bytes=len(text), series=text.count("\n"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows per side for the drift half")
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--metrics", type=int, default=10)
    ap.add_argument("--runs", type=int, default=50)
    a = ap.parse_args(argv)
    d = bench_drift(a.rows)
    print(f"drift, {d['rows']:,} rows per side, 2 columns: monitor.drift on Dask {d['ours_s']:.2f} s; "
          f"scipy ks_2samp + numpy PSI in memory {d['scipy_s']:.2f} s; ratio {d['ratio']:.2f}x; "
          f"max |KS - scipy KS| = {d['ks_err']:.5f}; PSI(x) = {d['psi_x']:.4f}")
    s = bench_scrape(a.jobs, a.metrics, a.runs)
    print(f"/metrics from a store of {s['rows']:,} metric rows: {1e3 * s['scrape_s']:.1f} ms per scrape (median of 5), "
          f"{s['bytes']:,} bytes, {s['series']:,} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
